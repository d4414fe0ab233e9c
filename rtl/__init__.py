"""Amaranth RTL of the DQT operators and the layer engine.

One component per module, each checked against the golden function of the same name:

``rtl.shifter.NestedShift``      golden.ops.nested_shift
``rtl.mac.NestedMac``            golden.ops.nested_mac (variants "right" and "msb")
``rtl.bitserial.BitserialMac``   golden.ops.bitserial_mac
``rtl.int8mac.Int8Mac``          golden.ops.int8_mac (reference design)
``rtl.accumulator.Accumulate``   golden.ops.accumulate
``rtl.requant.Requantize``       golden.ops.requantize (dyadic rule)
``rtl.operators``                IntMul, IntAdd, PaperDot, FactoredDot
``rtl.fp32.Fp32Requant``         golden.ops.fp32_requant (the float baseline)
``rtl.engine.Engine``            golden.layers.qdense / golden.engine (layer engine)

``rtl.registry`` builds any of them from JSON parameters; ``rtl.generate`` writes Verilog.
"""
__all__ = ["registry", "generate"]
