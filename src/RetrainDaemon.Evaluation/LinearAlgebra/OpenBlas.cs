using System.Runtime.InteropServices;

namespace RetrainDaemon.Evaluation.LinearAlgebra;

/// <summary>
/// Direct P/Invoke into Debian's OpenBLAS (<c>libopenblas0-pthread</c>), which carries BLAS and the
/// Fortran LAPACK routines (no LAPACKE). Measured here (PLATFORM.md): a 2,048² symmetric
/// eigendecomposition in ~1 s against ~23 s for MathNet's managed provider, which is why FID on
/// 2,048-d features goes through this and not through managed code. Every matrix is column-major.
/// </summary>
internal static unsafe partial class OpenBlas
{
    private const string Library = "libopenblas.so.0";

    public const int ColMajor = 102;
    public const int NoTrans = 111;
    public const int Trans = 112;
    public const int Upper = 121;
    public const int Lower = 122;
    public const int Left = 141;
    public const int Right = 142;
    public const int NonUnit = 131;

    private static readonly Lazy<string?> LoadFailure = new(Probe);

    /// <summary>Throws a clear error when the library is missing, instead of a bare DllNotFoundException deep in a metric.</summary>
    public static void EnsureAvailable()
    {
        if (LoadFailure.Value is { } failure)
        {
            throw new InvalidOperationException(
                $"FID, KID and the other feature-space metrics need OpenBLAS: {failure}. Install Debian's libopenblas0-pthread (apt-get install libopenblas0-pthread).");
        }
    }

    private static string? Probe()
    {
        try
        {
            return NativeLibrary.TryLoad(Library, typeof(OpenBlas).Assembly, null, out _) ? null : $"'{Library}' could not be loaded";
        }
        catch (DllNotFoundException ex)
        {
            return ex.Message;
        }
    }

    [LibraryImport(Library, EntryPoint = "openblas_set_num_threads")]
    public static partial void SetNumThreads(int threads);

    [LibraryImport(Library, EntryPoint = "openblas_get_num_threads")]
    public static partial int GetNumThreads();

    [LibraryImport(Library, EntryPoint = "cblas_dgemm")]
    public static partial void Dgemm(int order, int transA, int transB, int m, int n, int k, double alpha, double* a, int lda, double* b, int ldb, double beta, double* c, int ldc);

    [LibraryImport(Library, EntryPoint = "cblas_dsyrk")]
    public static partial void Dsyrk(int order, int uplo, int trans, int n, int k, double alpha, double* a, int lda, double beta, double* c, int ldc);

    [LibraryImport(Library, EntryPoint = "cblas_dtrmm")]
    public static partial void Dtrmm(int order, int side, int uplo, int transA, int diag, int m, int n, double alpha, double* a, int lda, double* b, int ldb);

    // Fortran LAPACK: every argument by reference; gfortran appends the lengths of CHARACTER
    // arguments as hidden trailing size_t parameters, so they are passed explicitly.
    [LibraryImport(Library, EntryPoint = "dpotrf_")]
    private static partial void DpotrfFortran(byte* uplo, int* n, double* a, int* lda, int* info, nint uploLength);

    [LibraryImport(Library, EntryPoint = "dsyevd_")]
    private static partial void DsyevdFortran(byte* jobz, byte* uplo, int* n, double* a, int* lda, double* w, double* work, int* lwork, int* iwork, int* liwork, int* info, nint jobzLength, nint uploLength);

    /// <summary>Cholesky factor in place (lower triangle of a column-major n×n matrix). Returns LAPACK's info: 0 ok, &gt; 0 not positive definite.</summary>
    public static int Dpotrf(double* a, int n)
    {
        byte uplo = (byte)'L';
        int info = 0;
        int lda = n;
        DpotrfFortran(&uplo, &n, a, &lda, &info, 1);
        return info;
    }

    /// <summary>
    /// Symmetric eigen-decomposition (divide and conquer) of the lower triangle of a column-major n×n
    /// matrix: eigenvalues ascending into <paramref name="w"/>; with <paramref name="vectors"/> the
    /// columns of <paramref name="a"/> become the eigenvectors.
    /// </summary>
    public static void Dsyevd(double* a, int n, double* w, bool vectors)
    {
        byte jobz = vectors ? (byte)'V' : (byte)'N';
        byte uplo = (byte)'L';
        int lda = n;
        int info = 0;
        int lwork = -1;
        int liwork = -1;
        double workQuery = 0;
        int iworkQuery = 0;
        DsyevdFortran(&jobz, &uplo, &n, a, &lda, w, &workQuery, &lwork, &iworkQuery, &liwork, &info, 1, 1);
        if (info != 0)
        {
            throw new InvalidOperationException($"LAPACK dsyevd workspace query failed (info {info})");
        }

        if (workQuery > int.MaxValue)
        {
            throw new InvalidOperationException($"LAPACK dsyevd needs a workspace of {workQuery} doubles for n = {n}, more than one array can hold");
        }

        lwork = Math.Max(1, (int)workQuery);
        liwork = Math.Max(1, iworkQuery);
        var work = new double[lwork];
        var iwork = new int[liwork];
        fixed (double* workPointer = work)
        fixed (int* iworkPointer = iwork)
        {
            DsyevdFortran(&jobz, &uplo, &n, a, &lda, w, workPointer, &lwork, iworkPointer, &liwork, &info, 1, 1);
        }

        if (info != 0)
        {
            throw new InvalidOperationException(info < 0
                ? $"LAPACK dsyevd rejected argument {-info} (a bug in the caller)"
                : $"LAPACK dsyevd did not converge (info {info})");
        }
    }
}
