using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.UnitTests.Registry;

public sealed class OnnxModelReaderTests
{
    private static OnnxModelInfo Read(byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        return OnnxModelReader.Read(stream);
    }

    [Fact]
    public void ReadsOpsetInputsOutputs_AndIgnoresInitializersAmongInputs()
    {
        var info = Read(TestOnnx.Model(payloadBytes: 64));

        Assert.Equal(8, info.IrVersion);
        Assert.Equal(17, info.Opset);
        var input = Assert.Single(info.Inputs);
        Assert.Equal(new TensorSpec("z", "float32", [-1, 4]).Name, input.Name);
        Assert.Equal([-1L, 4L], input.Shape);
        Assert.Equal("y", Assert.Single(info.Outputs).Name);
        Assert.Empty(info.ExternalData);
    }

    [Fact]
    public void ReadsExternalDataEntries_WithOffsetAndLength()
    {
        var info = Read(TestOnnx.Model(externalLocation: "w.bin", externalOffset: 4, externalLength: 12));

        var external = Assert.Single(info.ExternalData);
        Assert.Equal(new OnnxExternalData("ext", "w.bin", 4, 12, true), external);
    }

    [Fact]
    public void ReadsTheExportersOwnModels()
    {
        // A model as RetrainDaemon.Export writes it would also pass through here; the writer is the
        // same wire format, so a multi-megabyte payload must be skipped without reading it into memory.
        var info = Read(TestOnnx.Model(payloadBytes: 8 << 20));
        Assert.Equal(17, info.Opset);
    }

    [Fact]
    public void HostileBytes_EndInInvalidData_NeverACrash()
    {
        var random = new Random(42);
        byte[] valid = TestOnnx.Model(externalLocation: "w.bin", place: ExternalPlace.Subgraph);
        int invalid = 0;
        for (int i = 0; i < 5000; i++)
        {
            byte[] bytes;
            if (i % 2 == 0)
            {
                bytes = new byte[random.Next(0, 200)];
                random.NextBytes(bytes);
            }
            else
            {
                // Mutations and truncations of a valid model.
                bytes = valid[..random.Next(0, valid.Length + 1)];
                if (bytes.Length > 0)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }
            }

            try
            {
                Read(bytes);
            }
            catch (InvalidDataException)
            {
                invalid++;
            }
        }

        Assert.True(invalid > 2500, $"{invalid} of 5000 were refused");
    }

    [Fact]
    public void ALengthBeyondTheFile_IsRefused_BeforeAnyAllocation()
    {
        // graph (field 7, length-delimited) claiming 2^40 bytes.
        byte[] bytes = [0x3A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        var ex = Assert.Throws<InvalidDataException>(() => Read(bytes));
        Assert.Contains("beyond its enclosing message", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeeplyNestedSubgraphs_AreRefused()
    {
        // Graph → node → attribute g → graph → ... 100 levels, built inside out.
        byte[] graph = [];
        for (int i = 0; i < 100; i++)
        {
            byte[] attribute = Field(6, graph);
            byte[] node = Field(5, attribute);
            graph = Field(1, node);
        }

        byte[] model = Field(7, graph);
        var ex = Assert.Throws<InvalidDataException>(() => Read(model));
        Assert.Contains("nested deeper", ex.Message, StringComparison.Ordinal);

        static byte[] Field(int field, byte[] payload)
        {
            var bytes = new List<byte> { (byte)((field << 3) | 2) };
            int length = payload.Length;
            while (length >= 0x80)
            {
                bytes.Add((byte)(length | 0x80));
                length >>= 7;
            }

            bytes.Add((byte)length);
            bytes.AddRange(payload);
            return [.. bytes];
        }
    }
}

public sealed class RegistryOptionsTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        var options = new RegistryOptions();
        Assert.True(new RegistryOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal(("state/registry", 5), (options.Root, options.KeepLast));
    }

    [Fact]
    public void ReportsEveryProblem_WithKeyAndValue()
    {
        var options = new RegistryOptions { Root = " ", KeepLast = 0, LockTimeout = TimeSpan.Zero };

        var failures = new RegistryOptionsValidator().Validate(null, options).Failures!.ToList();

        Assert.Equal(3, failures.Count);
        Assert.Contains(failures, f => f.StartsWith("Registry:Root = ' '", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Registry:KeepLast = '0': must be between 1 and", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Registry:LockTimeout = '00:00:00'", StringComparison.Ordinal));
    }
}
