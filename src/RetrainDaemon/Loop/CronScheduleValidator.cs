using Microsoft.Extensions.Options;
using Quartz;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Loop;

/// <summary>
/// The models' cron schedules must parse as Quartz cron expressions (seconds first). Runs next to
/// the catalog's own validator, so one failed start lists every problem.
/// </summary>
public sealed class CronScheduleValidator : IValidateOptions<ModelCatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelCatalogOptions options)
    {
        var failures = new List<string>();
        foreach (var (model, o) in options.Models)
        {
            Check($"{model}:{nameof(o.Schedule)}", o.Schedule);
            Check($"{model}:{nameof(o.AnalysisSchedule)}", o.AnalysisSchedule);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Check(string key, string expression)
        {
            if (expression.Length == 0)
            {
                return;
            }

            try
            {
                _ = new CronExpression(expression);
            }
            catch (FormatException ex)
            {
                failures.Add($"{ModelCatalogOptions.Section}:{key} = '{expression}': not a Quartz cron expression (seconds minutes hours day-of-month month day-of-week [year], e.g. '0 0 3 * * ?'): {ex.Message}");
            }
        }
    }
}
