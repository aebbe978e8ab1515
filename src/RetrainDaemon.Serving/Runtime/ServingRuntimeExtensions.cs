using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Observability;

namespace RetrainDaemon.Serving.Runtime;

/// <summary>Registration of the serving runtime (sessions, hot swap); the HTTP layer's <c>AddServing()</c> calls it.</summary>
public static class ServingRuntimeExtensions
{
    /// <summary>
    /// Registers <see cref="ServingOptions"/> (section <c>Serving</c>, validated at start), the
    /// <see cref="SessionFactory"/>, <see cref="ServingMetrics"/>, and <see cref="ServedModels"/> as a
    /// singleton that is also <see cref="IServedModels"/>, <see cref="IModelChangeNotifier"/> and a
    /// hosted service. Needs a <see cref="Core.Registry.ModelRegistry"/> registered by the host
    /// (<c>AddRegistry()</c>); the model catalog (<c>Models</c>) is optional. Idempotent.
    /// </summary>
    public static IServiceCollection AddServingRuntime(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(ServedModels)))
        {
            return services;
        }

        services.AddSingleton<IValidateOptions<ServingOptions>, ServingOptionsValidator>();
        services.AddOptions<ServingOptions>().BindConfiguration(ServingOptions.Section).ValidateOnStart();
        services.TryAddSingleton<ServingMetrics>();
        services.TryAddSingleton(sp => new SessionFactory(sp.GetRequiredService<IOptions<ServingOptions>>().Value, sp.GetRequiredService<ILogger<SessionFactory>>()));
        services.AddSingleton<ServedModels>();
        services.AddSingleton<IServedModels>(sp => sp.GetRequiredService<ServedModels>());
        services.AddSingleton<IModelChangeNotifier>(sp => sp.GetRequiredService<ServedModels>());
        services.AddHostedService(sp => sp.GetRequiredService<ServedModels>());
        return services;
    }
}
