"""DQT quantization-aware training: nested quantizers, precision controller, integer export.

``training.quant``         nested fake quantizers (STE), PACT activations, QuantConfig
``training.layers``        quantized conv2d / linear / add with a per-call precision
``training.controller``    two-layer MLP controller with Gumbel-Softmax over B
``training.models``        layer graphs mapping onto the golden manifest (digits CNN, ResNet-20)
``training.data``          digits split, CIFAR-10 binary loader
``training.export``        float model -> integer artifact (golden.network.save_network)
``training.integer_torch`` independent torch int64 runner of an artifact
``training.train``         the training recipe (``train_digits``)
``training.evaluate``      held-out evaluation of an artifact (``evaluate``)
"""
