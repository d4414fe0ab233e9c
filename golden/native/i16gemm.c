/* Exact integer GEMM for the golden model's fast path on AVX2 (docs/arithmetic.md §9,
 * "The i16 kernel"): C[M, N] (int32) = A[M, K] x B[N, K]^T with A and B holding int16
 * values. Built at run time by golden/native.py into a shared library (cached) and
 * called through ctypes; Python threads split the rows (a call holds no GIL).
 *
 * The kernel is vpmaddwd (_mm256_madd_epi16): two adjacent int16 x int16 products added
 * into an int32 lane, no saturation except for (-32768)^2 + (-32768)^2, which codes of at
 * most 9 bits never form; then vpaddd into int32 accumulators. B is packed once per layer
 * in panels of 16 columns, K in pairs: packed[p][kp][j][2] = (B[16p + j][2kp],
 * B[16p + j][2kp + 1]), zero padded to even K and to a multiple of 16 columns.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define NR 16   /* columns per panel: two 8-lane int32 vectors */
#define MR 4    /* rows per micro-tile: 8 accumulators, 2 panel vectors and a broadcast
                   stay in the 16 ymm registers (a 4 x 24 tile spills to the stack) */

void dqt_i16_pack(const int16_t *b, int64_t n, int64_t k, int16_t *packed) {
    const int64_t kp2 = (k + 1) / 2, panels = (n + NR - 1) / NR;
    memset(packed, 0, (size_t)(panels * kp2 * NR * 2) * sizeof(int16_t));
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t kp = 0; kp < kp2; ++kp)
            for (int64_t j = 0; j < NR; ++j) {
                const int64_t col = p * NR + j;
                if (col >= n) continue;
                int16_t *dst = packed + ((p * kp2 + kp) * NR + j) * 2;
                dst[0] = b[col * k + 2 * kp];
                dst[1] = (2 * kp + 1 < k) ? b[col * k + 2 * kp + 1] : 0;
            }
}

static inline int32_t pair_at(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#define STEP(r)                                                                          \
    {                                                                                    \
        const __m256i av = _mm256_set1_epi32(pair_at(a + (r) * lda + 2 * kp));            \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(av, b0));                   \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(av, b1));                   \
    }

/* A full MR x NR tile: accumulators in named registers. */
static inline void tile_full(const int16_t *a, int64_t lda, const int16_t *panel,
                             int64_t kp2, int32_t *c, int64_t ldc, int cols) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
            c21 = c00, c30 = c00, c31 = c00;
    for (int64_t kp = 0; kp < kp2; ++kp) {
        const __m256i *bp = (const __m256i *)(panel + kp * NR * 2);
        const __m256i b0 = _mm256_loadu_si256(bp), b1 = _mm256_loadu_si256(bp + 1);
        STEP(0) STEP(1) STEP(2) STEP(3)
    }
    const __m256i acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (int r = 0; r < MR; ++r) {
        int32_t out[NR];
        _mm256_storeu_si256((__m256i *)out, acc[r][0]);
        _mm256_storeu_si256((__m256i *)(out + 8), acc[r][1]);
        memcpy(c + r * ldc, out, (size_t)cols * sizeof(int32_t));
    }
}

/* The last rows (fewer than MR), one at a time. */
static void tile_rows(const int16_t *a, int64_t lda, int rows, const int16_t *panel,
                      int64_t kp2, int32_t *c, int64_t ldc, int cols) {
    for (int r = 0; r < rows; ++r) {
        __m256i c00 = _mm256_setzero_si256(), c01 = c00;
        for (int64_t kp = 0; kp < kp2; ++kp) {
            const __m256i *bp = (const __m256i *)(panel + kp * NR * 2);
            const __m256i b0 = _mm256_loadu_si256(bp), b1 = _mm256_loadu_si256(bp + 1);
            STEP(0)
        }
        int32_t out[NR];
        _mm256_storeu_si256((__m256i *)out, c00);
        _mm256_storeu_si256((__m256i *)(out + 8), c01);
        memcpy(c + r * ldc, out, (size_t)cols * sizeof(int32_t));
        a += lda;
    }
}

/* Rows [m0, m1) of C. A: [M, lda] int16 with lda >= 2 * ceil(K / 2) (the pad column, if
 * any, zero); C: [M, n] int32. */
void dqt_i16_gemm(const int16_t *a, int64_t lda, int64_t m0, int64_t m1, int64_t k,
                  const int16_t *packed, int64_t n, int32_t *c) {
    const int64_t kp2 = (k + 1) / 2, panels = (n + NR - 1) / NR;
    for (int64_t p = 0; p < panels; ++p) {
        const int16_t *panel = packed + p * kp2 * NR * 2;
        const int cols = (int)((n - p * NR) < NR ? (n - p * NR) : NR);
        for (int64_t i = m0; i < m1; i += MR) {
            const int rows = (int)((m1 - i) < MR ? (m1 - i) : MR);
            if (rows == MR)
                tile_full(a + i * lda, lda, panel, kp2, c + i * n + p * NR, n, cols);
            else
                tile_rows(a + i * lda, lda, rows, panel, kp2, c + i * n + p * NR, n, cols);
        }
    }
}
