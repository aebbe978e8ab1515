namespace RetrainDaemon.Serving.Generation;

/// <summary>
/// Tiles equally sized images into one: <c>ceil(sqrt(n))</c> columns, as many rows as needed, in
/// row-major order (the order of the response's <c>generation_ids</c>), with a black border of
/// <see cref="Padding"/> pixels around and between tiles.
/// </summary>
internal static class ImageGrid
{
    public const int Padding = 2;

    /// <summary>The grid's columns and rows for <paramref name="count"/> tiles.</summary>
    public static (int Columns, int Rows) Layout(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        int columns = (int)Math.Ceiling(Math.Sqrt(count));
        return (columns, (count + columns - 1) / columns);
    }

    /// <summary>Channel-last tiles (<c>height × width × channels</c> each) → one channel-last grid image.</summary>
    public static (byte[] Pixels, int Width, int Height) Tile(IReadOnlyList<byte[]> tiles, int width, int height, int channels)
    {
        ArgumentNullException.ThrowIfNull(tiles);
        var (columns, rows) = Layout(tiles.Count);
        int gridWidth = columns * (width + Padding) + Padding;
        int gridHeight = rows * (height + Padding) + Padding;
        var grid = new byte[gridWidth * gridHeight * channels];
        int rowBytes = width * channels;
        for (int t = 0; t < tiles.Count; t++)
        {
            if (tiles[t].Length != rowBytes * height)
            {
                throw new ArgumentException($"tile {t} has {tiles[t].Length} bytes, expected {rowBytes * height}", nameof(tiles));
            }

            int x0 = Padding + (t % columns) * (width + Padding);
            int y0 = Padding + (t / columns) * (height + Padding);
            for (int y = 0; y < height; y++)
            {
                tiles[t].AsSpan(y * rowBytes, rowBytes).CopyTo(grid.AsSpan(((y0 + y) * gridWidth + x0) * channels));
            }
        }

        return (grid, gridWidth, gridHeight);
    }
}
