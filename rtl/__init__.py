"""Amaranth RTL of the DQT operators and the layer engine.

One component per module, each checked against the golden function of the same name:

``rtl.nested_shift.NestedShift``      golden.ops.nested_shift
``rtl.nested_mac.NestedMac``            golden.ops.nested_mac (variants "right" and "msb")
``rtl.bitserial_mac.BitserialMac``   golden.ops.bitserial_mac
``rtl.int_mac.IntMac``          golden.ops.int_mac (reference design)
``rtl.accumulate.Accumulate``   golden.ops.accumulate
``rtl.requantize.Requantize``       golden.ops.requantize (dyadic rule)
``rtl.operators``                IntMul, IntAdd, PaperDot, FactoredDot
``rtl.fp32_requant.Fp32Requant``         golden.ops.fp32_requant (the float baseline)
``rtl.engine.Engine``            golden.layers.qdense / rtl.engine_protocol (layer engine)

``rtl.registry`` builds any of them from JSON parameters; ``rtl.generate`` writes Verilog.
"""
__all__ = ["registry", "generate"]
