/* A whole linear layer of the golden model on AVX-512 VNNI, fused (docs/arithmetic.md §9,
 * "The vnni kernel"): the nested shift of the activation codes, the u8 x s8 GEMM with int32
 * sums, and (s << k2) + bias with the accumulator's overflow policy, in one call per block of
 * rows. Built at run time by golden/native.py (cached) and called through ctypes; Python
 * threads split the rows (a call holds no GIL).
 *
 * The products are vpdpbusd (_mm512_dpbusd_epi32): four adjacent u8 x s8 products added in
 * full precision into an int32 lane (no int16 pair sum, no saturation: the non-"s" form).
 * Activations go in uncentred, x_b in [0, 2^b - 1], weights as they are, w_b in
 * [-2^(b-1), 2^(b-1) - 1], so b <= 8; every partial sum is exact while
 * K (2^b - 1) 2^(b-1) <= 2^31 - 1 (golden.fast.vnni_plan checks it).
 *
 * Weights are packed once per layer in panels of NR = 64 columns, K in quads:
 * packed[((p K4 + q) NR + j) 4 + t] = W[NR p + j][4 q + t], zero padded to a multiple of 4
 * terms (K4 quads) and of NR columns.
 *
 * Built with -DDQT_AMX (and -mamx-tile -mamx-int8) the same file is the amx kernel: the
 * products are Intel AMX tdpbusd (_tile_dpbusd) on 16 x 64-byte tiles, the same u8 x s8
 * dot products of four into int32 with no saturation, so the same bound makes it exact. Its
 * weights are packed tile by tile (pack_at: each B tile of 16 quads x 16 columns is 1 KiB
 * contiguous); K4 is padded to a multiple of 16 quads (64 terms, one tile) and the rows of a
 * block to a multiple of 32 (two A tiles). The shift, the finish and the threads are shared.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Measured on Zen 4 (2 cores): 4 x 6, 3 x 8, 2 x 12 and 2 x 8 tiles run within noise of
 * each other; two row blocks per thread beat one and four on a 256-row layer. */
#define NV 4          /* zmm vectors per panel row */
#define NR (16 * NV)  /* columns per panel */
#define MR 6          /* rows per micro-tile: 24 accumulators + 4 panel vectors in 32 zmm */
#define PER_THREAD 2  /* row blocks per thread */
#define MC 96         /* most rows of a block (shifted into the u8 buffer together) */
#ifdef DQT_AMX
#define QUADS 16      /* K4 a multiple of one tile's 16 quads */
#define SBUF 32       /* rows of int32 sums buffered per thread */
#define BLOCK_ROWS 32 /* block rows a multiple of two A tiles */
#else
#define QUADS 1
#define SBUF 0
#define BLOCK_ROWS MR
#endif

/* Quads of K as packed (and bytes / 4 of a shifted activation row). */
int64_t dqt_vnni_quads(int64_t k) { return ((k + 3) / 4 + QUADS - 1) / QUADS * QUADS; }

#ifdef DQT_AMX
/* Byte offset of weight (column j of panel p, quad q, term t) in the amx layout: every
 * tdpbusd B tile (16 quads x 16 columns x 4 terms) is 1 KiB contiguous, in the order the
 * kernel reads them: panel, 32-column half, 16-quad step, 16-column tile. Against strided
 * tiles (16 rows 4 NR bytes apart, the vnni layout) a 256 x 512 x 512 layer ran 2-12 %
 * faster on one thread. */
static inline int64_t pack_at(int64_t p, int64_t k4, int64_t q, int64_t j, int t) {
    return p * k4 * NR * 4 + (((j / 32) * (k4 / QUADS) + q / QUADS) * 2 + (j / 16) % 2) * 1024
           + ((q % QUADS) * 16 + j % 16) * 4 + t;
}
#else
static inline int64_t pack_at(int64_t p, int64_t k4, int64_t q, int64_t j, int t) {
    return ((p * k4 + q) * NR + j) * 4 + t;
}
#endif

void dqt_vnni_pack(const int8_t *w, int64_t n, int64_t k, int8_t *packed) {
    const int64_t k4 = dqt_vnni_quads(k), panels = (n + NR - 1) / NR;
    memset(packed, 0, (size_t)(panels * k4 * NR * 4));
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t q = 0; q < k4; ++q)
            for (int64_t j = 0; j < NR; ++j) {
                const int64_t col = p * NR + j;
                if (col >= n) continue;
                for (int t = 0; t < 4; ++t)
                    packed[pack_at(p, k4, q, j, t)] = (4 * q + t < k) ? w[col * k + 4 * q + t] : 0;
            }
}

/* The nested shift of one row of unsigned codes into u8 (golden.ops.nested_shift): floor
 * v >> k, or round min(max((v + 2^(k-1)) >> k, lo), hi); codes outside [lo_in, hi_in] are
 * counted (the caller raises). Branch-free so that it vectorizes. */
#define SHIFT_ROW(T, W) /* W: the working type, int32_t for codes narrower than 64 bits */  \
    static int64_t shift_row_##T(const T *src, int64_t K, int k, int rnd, int64_t lo_in,      \
                                 int64_t hi_in, int64_t lo_, int64_t hi_, uint8_t *dst) {     \
        W bad = 0;                                                                            \
        const W half = k > 0 ? ((W)1 << (k - 1)) : 0, lo = (W)lo_, hi = (W)hi_;              \
        const W a = (W)lo_in, b = (W)hi_in;                                                   \
        if (rnd && k > 0) {                                                                   \
            for (int64_t i = 0; i < K; ++i) {                                                 \
                const W v = (W)src[i];                                                        \
                bad += (v < a) | (v > b);                                                     \
                W r = (v + half) >> k;                                                        \
                r = r < lo ? lo : r;                                                          \
                dst[i] = (uint8_t)(r > hi ? hi : r);                                          \
            }                                                                                 \
        } else {                                                                              \
            for (int64_t i = 0; i < K; ++i) {                                                 \
                const W v = (W)src[i];                                                        \
                bad += (v < a) | (v > b);                                                     \
                dst[i] = (uint8_t)(v >> k);                                                   \
            }                                                                                 \
        }                                                                                     \
        return (int64_t)bad;                                                                  \
    }
SHIFT_ROW(int64_t, int64_t)
SHIFT_ROW(int32_t, int64_t) /* int32 codes near its limits would overflow v + half */
SHIFT_ROW(int16_t, int32_t)
SHIFT_ROW(int8_t, int32_t)
SHIFT_ROW(uint8_t, int32_t)

/* What the finish needs, its constants as vectors; made once per block of rows, in a local
 * (the stores to acc and over could alias the fields of a struct in memory, and the compiler
 * would reload them after each one). */
typedef struct {
    __m512i lo, hi, mod;
    __m128i sh;
    int64_t n, sat, safe;
    const int64_t *bias;
    int64_t *acc;
    uint8_t *over;
} fin_t;

static inline fin_t fin_make(int64_t n, int64_t k2, int64_t alo, int64_t ahi, int64_t sat,
                             int64_t safe, const int64_t *bias, int64_t *acc, uint8_t *over) {
    const fin_t F = {_mm512_set1_epi64(alo), _mm512_set1_epi64(ahi),
                     _mm512_set1_epi64(ahi - alo), _mm_cvtsi64_si128(k2), n, sat, safe, bias,
                     acc, over};
    return F;
}

/* 1 when no sum can leave the accumulator: for every column j, with the shifted codes in
 * [0, xhi], (s << k2) + bias[j] lies in [(xhi wneg[j] << k2) + bias[j], (xhi wpos[j] << k2)
 * + bias[j]] (wpos / wneg: the sums of the column's positive / negative weights), and both
 * ends are inside [alo, ahi]. Then wrap and saturate are the identity and every flag is 0,
 * so the finish skips them. Any int64 overflow on the way counts as unsafe. */
static int64_t no_overflow(int64_t n, int64_t xhi, const int64_t *wpos, const int64_t *wneg,
                           const int64_t *bias, int64_t k2, int64_t alo, int64_t ahi) {
    if (k2 < 0 || k2 > 62) return 0;
    for (int64_t j = 0; j < n; ++j) {
        int64_t lo, hi;
        if (__builtin_mul_overflow(xhi, wneg[j], &lo) || __builtin_mul_overflow(xhi, wpos[j], &hi)
            || __builtin_mul_overflow(lo, (int64_t)1 << k2, &lo)
            || __builtin_mul_overflow(hi, (int64_t)1 << k2, &hi)
            || __builtin_add_overflow(lo, bias[j], &lo) || __builtin_add_overflow(hi, bias[j], &hi)
            || lo < alo || hi > ahi)
            return 0;
    }
    return 1;
}

/* Half h of 16 int32 sums widened and shifted, plus the bias of columns j (mask mh) */
static inline __attribute__((always_inline)) __m512i biased_half(__m512i s, int h, __mmask8 mh,
                                                                 int64_t j, const fin_t *F) {
    const __m256i part = h ? _mm512_extracti64x4_epi64(s, 1) : _mm512_castsi512_si256(s);
    const __m512i v = _mm512_sll_epi64(_mm512_cvtepi32_epi64(part), F->sh);
    return _mm512_add_epi64(v, mh == 0xFF ? _mm512_loadu_si512(F->bias + j)
                                          : _mm512_maskz_loadu_epi64(mh, F->bias + j));
}

/* (s << k2) + bias and the overflow policy for 16 int32 sums of one row, columns j0..;
 * the flags are stored only for a group with an overflow (storing all 16 flags of every
 * group was a large part of the finish; two masked 8-byte stores, a quarter of the amx
 * kernel's time) */
static inline __attribute__((always_inline)) void finish16(__m512i s, int64_t row, int64_t j0,
                                                          const fin_t *F) {
    const int64_t left = F->n - j0;
    if (left <= 0) return;
    const __mmask16 m = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
    int64_t *dst = F->acc + row * F->n + j0;
    if (F->safe) {  /* no_overflow: (s << k2) + bias as it is, the flags stay 0 */
        if (m == 0xFFFF) {  /* plain loads and stores: masked ones stalled on each other */
            _mm512_storeu_si512(dst, biased_half(s, 0, 0xFF, j0, F));
            _mm512_storeu_si512(dst + 8, biased_half(s, 1, 0xFF, j0 + 8, F));
            return;
        }
        for (int h = 0; h < 2; ++h) {
            const __mmask8 mh = (__mmask8)(m >> (8 * h));
            _mm512_mask_storeu_epi64(dst + 8 * h, mh, biased_half(s, h, mh, j0 + 8 * h, F));
        }
        return;
    }
    __mmask16 o = 0;
    for (int h = 0; h < 2; ++h) {
        const __mmask8 mh = (__mmask8)(m >> (8 * h));
        const __m512i v = biased_half(s, h, mh, j0 + 8 * h, F);
        const __mmask8 oh = _mm512_cmplt_epi64_mask(v, F->lo) | _mm512_cmpgt_epi64_mask(v, F->hi);
        o |= (__mmask16)((unsigned)oh << (8 * h));
        const __m512i r = F->sat ? _mm512_min_epi64(_mm512_max_epi64(v, F->lo), F->hi)
                                 : _mm512_add_epi64(_mm512_and_si512(_mm512_sub_epi64(v, F->lo),
                                                                     F->mod), F->lo);
        _mm512_mask_storeu_epi64(dst + 8 * h, mh, r);
    }
    /* over comes zeroed (the caller's np.zeros): only a group with an overflow writes */
    if (__builtin_expect((o & m) != 0, 0))
        _mm_mask_storeu_epi8(F->over + row * F->n + j0, o & m, _mm_set1_epi8(1));
}

/* A ROWS x NR tile: a [ROWS, lda] u8, the panel [k4][NR][4] s8; then finish. */
static inline __attribute__((always_inline)) void tile(const uint8_t *a, int64_t lda,
                                                      const int ROWS, const int8_t *panel,
                                                      int64_t k4, int64_t row0, int64_t j0,
                                                      const fin_t *F) {
    __m512i c[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) c[r][v] = _mm512_setzero_si512();
    for (int64_t q = 0; q < k4; ++q) {
        const __m512i *bp = (const __m512i *)(panel + q * NR * 4);
        __m512i b[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_si512(bp + v);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
            int32_t quad;
            memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
            const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 16
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_dpbusd_epi32(c[r][v], av, b[v]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) finish16(c[r][v], row0 + r, j0 + 16 * v, F);
}

#ifdef DQT_AMX
#include <sys/syscall.h>
#include <unistd.h>

/* Asks Linux for the AMX tile state (once per process); 0 when granted. */
int dqt_amx_init(void) {
    return (int)syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                        18 /* XFEATURE_XTILEDATA */);
}

/* Every tile 16 rows x 64 bytes: 0-3 the sums of a 32 x 32 block, 4-5 A, 6-7 B. */
static void amx_config(void) {
    struct {
        uint8_t palette, start, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; ++t) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

/* 32 rows of a x 32 columns of the panel from column jl: int32 sums into s (row stride ls
 * int32s). */
static void amx_tile(const uint8_t *a, int64_t lda, const int8_t *panel, int64_t k4,
                     int64_t jl, int32_t *s, int64_t ls) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const int8_t *bt = panel + (jl / 32) * (k4 / QUADS) * 2048;  /* pack_at's tile order */
    for (int64_t q = 0; q < k4; q += 16, bt += 2048) {
        _tile_loadd(4, a + 4 * q, lda);
        _tile_loadd(5, a + 16 * lda + 4 * q, lda);
        _tile_loadd(6, bt, 64);
        _tile_loadd(7, bt + 1024, 64);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, s, 4 * ls);
    _tile_stored(1, s + 16, 4 * ls);
    _tile_stored(2, s + 16 * ls, 4 * ls);
    _tile_stored(3, s + 16 * ls + 16, 4 * ls);
}
#endif

typedef struct {
    const void *x;
    int xsize, k, rnd, sat;
    int64_t ldx, K, lo_in, hi_in, lo, hi, n, k2, alo, ahi, safe;
    const int8_t *packed;
    const int64_t *bias;
    int64_t *acc;
    uint8_t *over;
} job_t;

/* Rows [i0, i0 + rows) of the job, rows <= MC, through the u8 buffer abuf. Returns the
 * number of input codes outside [lo_in, hi_in] (then nothing useful is written). */
static int64_t block(const job_t *J, int64_t i0, int64_t rows, uint8_t *abuf) {
    const int64_t K = J->K, k4 = dqt_vnni_quads(K), lda = 4 * k4, panels = (J->n + NR - 1) / NR;
    const fin_t F = fin_make(J->n, J->k2, J->alo, J->ahi, J->sat, J->safe, J->bias, J->acc,
                             J->over);
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
        uint8_t *dst = abuf + r * lda;
        const int64_t row = i0 + r;
        const int k = J->k, rnd = J->rnd;
        const int64_t a = J->lo_in, b = J->hi_in, lo = J->lo, hi = J->hi, off = row * J->ldx;
#define SHIFT(T) bad += shift_row_##T((const T *)J->x + off, K, k, rnd, a, b, lo, hi, dst)
        switch (J->xsize) {
        case 8: SHIFT(int64_t); break;
        case 4: SHIFT(int32_t); break;
        case 2: SHIFT(int16_t); break;
        case 1: SHIFT(int8_t); break;
        default: SHIFT(uint8_t); break;
        }
#undef SHIFT
        memset(dst + K, 0, (size_t)(lda - K));
    }
    if (bad) return bad;
#ifdef DQT_AMX
    /* 32 rows at a time: every panel's sums into sbuf [32][panels NR] int32, then each row
     * finished in one sweep, so that acc and over are written row by row (finishing each
     * 32 x 32 tile as it came wrote rows 8n bytes apart and ran about 2x slower) */
    const int64_t padded = (rows + BLOCK_ROWS - 1) / BLOCK_ROWS * BLOCK_ROWS, ls = panels * NR;
    int32_t *sbuf = (int32_t *)(abuf + (padded * lda + 63) / 64 * 64);
    memset(abuf + rows * lda, 0, (size_t)((padded - rows) * lda));
    amx_config();
    for (int64_t r = 0; r < rows; r += BLOCK_ROWS) {
        for (int64_t p = 0; p < panels; ++p)
            for (int64_t jl = 0; jl < NR && p * NR + jl < J->n; jl += 32)
                amx_tile(abuf + r * lda, lda, J->packed + p * k4 * NR * 4, k4, jl,
                         sbuf + p * NR + jl, ls);
        const int64_t last = rows - r < BLOCK_ROWS ? rows - r : BLOCK_ROWS;
        for (int64_t rr = 0; rr < last; ++rr)
            for (int64_t j = 0; j < J->n; j += 16)
                finish16(_mm512_load_si512(sbuf + rr * ls + j), i0 + r + rr, j, &F);
    }
#else
    for (int64_t p = 0; p < panels; ++p) {
        const int8_t *panel = J->packed + p * k4 * NR * 4;
        int64_t r = 0;
        for (; r + MR <= rows; r += MR)
            tile(abuf + r * lda, lda, MR, panel, k4, i0 + r, p * NR, &F);
        const uint8_t *ar = abuf + r * lda;
        switch (rows - r) {  /* the last rows, fewer than MR (= 6) */
#define TAIL(n) case n: tile(ar, lda, n, panel, k4, i0 + r, p * NR, &F); break;
        TAIL(5) TAIL(4) TAIL(3) TAIL(2) TAIL(1)
#undef TAIL
        default: break;
        }
    }
#endif
    return 0;
}

/* ---- threads ---------------------------------------------------------------------------
 * OpenMP, because torch runs its own kernels (fbgemm, oneDNN, sgemm) on libgomp: this
 * library loads the same libgomp.so.1 (the process has one copy, torch's when torch came
 * first), so its parallel region runs on the threads torch's last region left spinning. A
 * pool of its own would fight those spinning threads for the cores (measured 1.5x slower
 * right after an fbgemm call on 2 cores) or pay a wake-up per call. Row blocks are handed
 * out dynamically, so a thread that comes late only takes what is left. */

/* libgomp is not fork-safe: a child forked after a parallel region hangs in its next one
 * (torch's own kernels too). A forked child runs this kernel on its calling thread only. */
static int g_forked;
static void forked_child(void) { g_forked = 1; }
__attribute__((constructor)) static void register_fork(void) {
    pthread_atfork(NULL, NULL, forked_child);
}

static __thread uint8_t *t_buf;
static __thread size_t t_cap;

static uint8_t *thread_buffer(size_t need) {
    if (need > t_cap) {
        free(t_buf);
        t_cap = (need + 4095) / 4096 * 4096;
        t_buf = aligned_alloc(64, t_cap);
        if (!t_buf) t_cap = 0;
    }
    return t_buf;
}

/* A linear layer, rows [0, M). x: [M, ldx] codes of `xsize` bytes (8, 4, 2, 1 signed;
 * -1: uint8); n outputs; wpos / wneg: per column the sums of the positive / negative weights
 * (no_overflow); acc: [M, n] int64, over: [M, n] bool, zeroed; threads: how many threads
 * may work on it (the caller's included). Returns the number of input codes outside
 * [lo_in, hi_in] (then the outputs are garbage), or -1 when out of memory. */
int64_t dqt_vnni_linear(const void *x, int xsize, int64_t ldx, int64_t M, int64_t K, int k,
                        int rnd, int64_t lo_in, int64_t hi_in, int64_t lo, int64_t hi,
                        const int8_t *packed, const int64_t *wpos, const int64_t *wneg,
                        int64_t n, const int64_t *bias, int64_t k2, int64_t alo, int64_t ahi,
                        int sat, int64_t *acc, uint8_t *over, int threads) {
    const job_t job = {x, xsize, k, rnd, sat, ldx, K, lo_in, hi_in, lo, hi, n, k2, alo, ahi,
                       no_overflow(n, hi, wpos, wneg, bias, k2, alo, ahi), packed, bias, acc,
                       over};
    threads = threads < 1 || g_forked ? 1 : threads;
    /* blocks of at least 4 tiles; about four per thread so that a late one can share */
    int64_t chunk = (M + PER_THREAD * threads - 1) / (PER_THREAD * threads);
    chunk = (chunk + BLOCK_ROWS - 1) / BLOCK_ROWS * BLOCK_ROWS;
    if (chunk < 4 * MR) chunk = (4 * MR + BLOCK_ROWS - 1) / BLOCK_ROWS * BLOCK_ROWS;
    if (chunk > MC) chunk = MC;
    const int64_t blocks = (M + chunk - 1) / chunk, lda = 4 * dqt_vnni_quads(K);
    if (blocks < threads) threads = (int)blocks;
    int64_t bad = 0, oom = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(+ : bad, oom)
    {
        /* the shifted rows (chunk: whole BLOCK_ROWS); the amx kernel's sums after them */
        uint8_t *abuf = thread_buffer((size_t)(chunk * lda + 128 +
                                               SBUF * 4 * ((n + NR - 1) / NR) * NR));
        if (!abuf) ++oom;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < blocks; ++b) {
            if (!abuf) continue;
            const int64_t i0 = b * chunk, rows = M - i0 < chunk ? M - i0 : chunk;
            bad += block(&job, i0, rows, abuf);
        }
#ifdef DQT_AMX
        _tile_release();
#endif
    }
    return oom ? -1 : bad;
}
