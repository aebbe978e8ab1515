using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace RetrainDaemon.Messaging.Events;

/// <summary>Registration of the registry-event consumer.</summary>
public static class ModelEventsExtensions
{
    /// <summary>
    /// Registers <see cref="ModelEventsConsumer"/> as a hosted service and its metrics. It reads the
    /// validated <c>Broker</c> options that the ingestion stage registers (call after <c>AddIngestion</c>),
    /// and it runs only if some stage registers a <see cref="Core.Contracts.IModelChangeNotifier"/>
    /// (the serving runtime); otherwise it logs that once and stays idle. Idempotent.
    /// </summary>
    public static IServiceCollection AddModelEvents(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<ModelEventMetrics>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, ModelEventsConsumer>());
        return services;
    }
}
