// Verilator-native batch driver of the layer engine (rtl.engine.Engine), loaded by
// sim/batch.py through ctypes. The host convention (register writes, weight rows, channel
// constants, beats) is rtl.engine_protocol's; this file only moves arrays of it through the
// engine's ports one clock at a time, in C++, with no VPI and no Python per clock.
//
// Build: sim.batch compiles this file with the engine's Verilog into a shared library
// (verilator --cc --exe ... -LDFLAGS -shared) through a two-line wrapper that defines VTOP
// (the Verilated class), includes its header and, for WAVES=1, defines DQT_TRACE.
//
// Verilator escapes "__" in port names: the stream port i__valid is the member i_valid.
// Payload fields are placed by bit offset and width given at open() (from the generated
// port table), so the file does not depend on the engine's parameters.
#include <cstdint>
#include <cstring>
#include <memory>
#include "verilated.h"
#ifdef DQT_TRACE
#include "verilated_vcd_c.h"
#endif

namespace {

// ---- bit fields of ports of any Verilated width (CData .. QData, VlWide<N>) ----
template <typename T> inline void set_bits(T& port, int off, int width, uint64_t v) {
    const uint64_t m = (width >= 64 ? ~0ULL : ((1ULL << width) - 1)) << off;
    port = static_cast<T>((static_cast<uint64_t>(port) & ~m) | ((v << off) & m));
}
template <std::size_t N> inline void set_bits(VlWide<N>& port, int off, int width, uint64_t v) {
    for (int b = 0; b < width;) {  // at most 32 bits per word
        const int w = off + b, word = w >> 5, sh = w & 31;
        const int take = (32 - sh) < (width - b) ? (32 - sh) : (width - b);
        const uint32_t m = (take == 32 ? 0xFFFFFFFFu : ((1u << take) - 1)) << sh;
        const uint32_t piece = static_cast<uint32_t>(v >> b) << sh;
        port[word] = (port[word] & ~m) | (piece & m);
        b += take;
    }
}
template <typename T> inline uint64_t get_bits(const T& port, int off, int width) {
    const uint64_t v = static_cast<uint64_t>(port) >> off;
    return width >= 64 ? v : (v & ((1ULL << width) - 1));
}
template <std::size_t N> inline uint64_t get_bits(const VlWide<N>& port, int off, int width) {
    uint64_t v = 0;
    for (int b = 0; b < width;) {
        const int w = off + b, word = w >> 5, sh = w & 31;
        const int take = (32 - sh) < (width - b) ? (32 - sh) : (width - b);
        const uint64_t piece = (static_cast<uint64_t>(port[word]) >> sh) &
                               (take == 32 ? 0xFFFFFFFFULL : ((1ULL << take) - 1));
        v |= piece << b;
        b += take;
    }
    return v;
}
inline int64_t sign_extend(uint64_t v, int width) {
    if (width >= 64) return static_cast<int64_t>(v);
    const uint64_t s = 1ULL << (width - 1);
    return static_cast<int64_t>((v ^ s) - s);
}
template <typename T> inline void clear(T& port) { port = 0; }
template <std::size_t N> inline void clear(VlWide<N>& port) {
    for (std::size_t i = 0; i < N; ++i) port[i] = 0;
}

}  // namespace

// Field geometry of the engine, filled by the Python side from the port table.
struct DqtLayout {
    int32_t n, pes, lanes, out_lanes, acc_max, m_bits;
    int32_t in_x_off, in_x2_off, in_bits_off, bits_w;           // i_payload
    int32_t out_y_off, out_over_off, out_bits_off, out_last_off;  // o_payload
    int32_t x_fields;  // n-bit fields of x and x2 (pes; 4 pes in the fusion engine)
};

struct DqtEngine {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<VTOP> top;
    DqtLayout lay;
    uint64_t cycle = 0;
    uint16_t lfsr = 0xACE1;
#ifdef DQT_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
#endif

    void dump(uint64_t t) {
#ifdef DQT_TRACE
        if (vcd) vcd->dump(t);
#else
        (void)t;
#endif
    }
    // One clock period with the inputs already set: the low phase, then the rising edge.
    void tick() {
        top->clk = 0; top->eval(); dump(2 * cycle);
        top->clk = 1; top->eval(); dump(2 * cycle + 1); ++cycle;
    }
};

extern "C" {

DqtEngine* dqt_open(const DqtLayout* lay, const char* vcd_path) {
    auto* e = new DqtEngine;
    e->ctx.reset(new VerilatedContext);
    e->top.reset(new VTOP{e->ctx.get()});
    e->lay = *lay;
#ifdef DQT_TRACE
    if (vcd_path && *vcd_path) {
        e->ctx->traceEverOn(true);
        e->vcd.reset(new VerilatedVcdC);
        e->top->trace(e->vcd.get(), 99);
        e->vcd->open(vcd_path);
    }
#else
    (void)vcd_path;
#endif
    VTOP* t = e->top.get();
    t->i_valid = 0; t->o_ready = 0; t->cfg_we = 0; t->w_we = 0; t->c_we = 0;
    t->rst = 1;
    for (int i = 0; i < 3; ++i) e->tick();
    t->rst = 0;
    e->tick();
    return e;
}

void dqt_close(DqtEngine* e) {
    if (!e) return;
#ifdef DQT_TRACE
    if (e->vcd) e->vcd->close();
#endif
    e->top->final();
    delete e;
}

uint64_t dqt_cycle(const DqtEngine* e) { return e->cycle; }

// Toggle coverage (a build with --coverage-toggle, e.g. the gate-level engine of
// sim.gate): write the counts so far to a file, or reset them. No-ops otherwise.
void dqt_cov_write(DqtEngine* e, const char* path) {
#if VM_COVERAGE
    e->ctx->coveragep()->write(path);
#else
    (void)e; (void)path;
#endif
}
void dqt_cov_zero(DqtEngine* e) {
#if VM_COVERAGE
    e->ctx->coveragep()->zero();
#else
    (void)e;
#endif
}
int dqt_overflow(DqtEngine* e) { return e->top->overflow; }
int dqt_busy(DqtEngine* e) { return e->top->busy; }

// Register writes, one per clock.
void dqt_write_cfg(DqtEngine* e, int64_t n, const int64_t* addr, const int64_t* data) {
    VTOP* t = e->top.get();
    for (int64_t i = 0; i < n; ++i) {
        t->cfg_we = 1; t->cfg_addr = addr[i]; t->cfg_data = static_cast<uint32_t>(data[i]);
        e->tick();
    }
    t->cfg_we = 0;
    e->tick();
}

// Weight rows: rows[i] holds lanes x pes signed codes (lane-major), one w_we per row.
void dqt_write_weights(DqtEngine* e, int64_t n, const int64_t* addr, const int64_t* rows) {
    VTOP* t = e->top.get();
    const int per = e->lay.lanes * e->lay.pes, w = e->lay.n;
    for (int64_t i = 0; i < n; ++i) {
        t->w_we = 1; t->w_addr = addr[i];
        for (int j = 0; j < per; ++j) set_bits(t->w_data, j * w, w, rows[i * per + j]);
        e->tick();
    }
    t->w_we = 0;
    e->tick();
}

// Per-channel constants of group addr[i]: bias and M of every lane.
void dqt_write_chans(DqtEngine* e, int64_t n, const int64_t* addr, const int64_t* bias,
                     const int64_t* m) {
    VTOP* t = e->top.get();
    const int L = e->lay.lanes;
    for (int64_t i = 0; i < n; ++i) {
        t->c_we = 1; t->c_addr = addr[i];
        for (int l = 0; l < L; ++l) {
            set_bits(t->c_bias, l * e->lay.acc_max, e->lay.acc_max, bias[i * L + l]);
            set_bits(t->c_m, l * e->lay.m_bits, e->lay.m_bits, m[i * L + l]);
        }
        e->tick();
    }
    t->c_we = 0;
    e->tick();
}

// Stream nb beats (x, x2: [nb][x_fields] codes, x2 may be null; bits: [nb]) and collect n_out
// output beats: y [n_out][out_lanes] (signed acc_max), over/bits/last [n_out], cycle [n_out]
// (the clock whose rising edge took the beat). stall: o.ready follows a 16-bit LFSR (about
// half of the cycles, the harness's pattern). Returns the number of beats collected: n_out,
// or fewer after max_cycles (timeout); -1 when the engine offers a beat beyond n_out within
// the 12 cycles that follow.
int64_t dqt_stream(DqtEngine* e, int64_t nb, const int64_t* x, const int64_t* x2,
                   const int64_t* bits, int64_t n_out, int64_t* y, int64_t* over,
                   int64_t* obits, int64_t* last, int64_t* ocycle, int stall,
                   int64_t max_cycles) {
    VTOP* t = e->top.get();
    const DqtLayout& L = e->lay;
    int64_t shown = 0, got = 0;  // beat now in the shell's input register; beats collected
    const uint64_t start = e->cycle;
    auto show = [&](int64_t k) {
        t->i_valid = k < nb;
        if (k >= nb) return;
        for (int j = 0; j < L.x_fields; ++j) {
            set_bits(t->i_payload, L.in_x_off + j * L.n, L.n, x[k * L.x_fields + j]);
            set_bits(t->i_payload, L.in_x2_off + j * L.n, L.n, x2 ? x2[k * L.x_fields + j] : 0);
        }
        set_bits(t->i_payload, L.in_bits_off, L.bits_w, bits[k]);
    };
    auto ready = [&]() -> int {
        if (!stall) return 1;
        const int r = e->lfsr & 1;
        const uint16_t fb = ((e->lfsr >> 15) ^ (e->lfsr >> 13) ^ (e->lfsr >> 12) ^
                             (e->lfsr >> 10)) & 1;
        e->lfsr = static_cast<uint16_t>((e->lfsr << 1) | fb);
        return r;
    };
    show(0);
    t->o_ready = ready();
    e->tick();  // beat 0 and o_ready are now in the shell's registers
    while (got < n_out) {
        if (static_cast<int64_t>(e->cycle - start) > max_cycles) break;
        if (t->o_take) {  // the coming edge takes this output beat
            for (int l = 0; l < L.out_lanes; ++l)
                y[got * L.out_lanes + l] = sign_extend(
                    get_bits(t->o_payload, L.out_y_off + l * L.acc_max, L.acc_max), L.acc_max);
            over[got] = static_cast<int64_t>(get_bits(t->o_payload, L.out_over_off, L.lanes));
            obits[got] = static_cast<int64_t>(get_bits(t->o_payload, L.out_bits_off, L.bits_w));
            last[got] = static_cast<int64_t>(get_bits(t->o_payload, L.out_last_off, 1));
            ocycle[got] = static_cast<int64_t>(e->cycle);
            ++got;
        }
        if (t->i_take) show(++shown);  // the coming edge takes the registered beat
        t->o_ready = ready();
        e->tick();
    }
    t->i_valid = 0;
    t->o_ready = 1;
    int64_t ret = got;
    if (got == n_out) {  // nothing more may come out
        for (int k = 0; k < 12 && ret == got; ++k) {
            if (t->o_take) ret = -1;
            e->tick();
        }
    }
    t->o_ready = 0;
    e->tick();
    return ret;
}

}  // extern "C"
