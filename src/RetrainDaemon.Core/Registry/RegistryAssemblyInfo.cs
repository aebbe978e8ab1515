using System.Runtime.CompilerServices;

// The registry's unit tests check the no-replace rename and hand-crafted manifests directly.
[assembly: InternalsVisibleTo("RetrainDaemon.UnitTests")]
