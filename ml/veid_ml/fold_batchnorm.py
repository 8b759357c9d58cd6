"""Inference copy of a Keras model with each BatchNormalization folded into the convolution before it.

In inference a BatchNormalization is a per-channel affine map, so conv -> BN is one convolution with a scaled kernel and
a bias, and a ReLU right after it becomes that convolution's activation. TensorFlow's graph optimizer then runs conv,
bias and ReLU as one fused oneDNN op instead of four ops (conv, multiply, add, ReLU), and at batch 1 the op count is
what sets the latency. The folded weights are computed once in NumPy float32 (elementwise, so the same bytes on every
machine); the outputs agree with the unfolded model to float rounding (a few 1e-7 relative), not bit for bit, so a
model must be evaluated, and its threshold chosen, through the folded copy that is exported.
"""

import keras
import numpy as np

FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


class _PassThrough(keras.layers.Layer):
    """Stands in for an absorbed layer (keras.layers.Identity rejects the mask argument BatchNormalization gets)."""

    def call(self, inputs, **kwargs):
        return inputs


def _sole_consumer(layer):
    """The one layer that reads `layer`'s output, or None when several do (or none)."""
    consumers = [node.operation for node in layer._outbound_nodes]
    return consumers[0] if len(consumers) == 1 else None


def _is_plain_relu(layer) -> bool:
    return (isinstance(layer, keras.layers.ReLU) and layer.max_value is None and not layer.negative_slope
            and not layer.threshold)


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """[kernel, bias] of the convolution that computes bn(conv(x)) in inference."""
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = (gamma / np.sqrt(bn.moving_variance.numpy() + np.float32(bn.epsilon))).astype(np.float32)
    kernel = conv.kernel.numpy()
    if isinstance(conv, keras.layers.DepthwiseConv2D):  # kernel (h, w, in, multiplier): out channel = in * mult + m
        kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:  # kernel (h, w, in, out)
        kernel = kernel * scale
    bias = conv.bias.numpy() if conv.use_bias else np.float32(0.0)
    return [kernel.astype(np.float32), ((bias - bn.moving_mean.numpy()) * scale + beta).astype(np.float32)]


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A functional model computing model(x, training=False) with conv -> BN (-> ReLU) chains as single convolutions.

    Only a BatchNormalization over the last axis that is the sole reader of a linear Conv2D/DepthwiseConv2D is folded;
    everything else is cloned as it is. The input model is not modified.
    """
    plans = {}  # conv name -> (bn layer, relu layer or None)
    for layer in model.layers:
        if not isinstance(layer, FOLDABLE) or layer.activation is not keras.activations.linear:
            continue
        bn = _sole_consumer(layer)
        if not isinstance(bn, keras.layers.BatchNormalization) or bn.axis not in (-1, len(bn.input.shape) - 1):
            continue
        relu = _sole_consumer(bn)
        plans[layer.name] = (bn, relu if _is_plain_relu(relu) else None)
    absorbed = {id(layer) for bn, relu in plans.values() for layer in (bn, relu) if layer is not None}

    def clone(layer):
        if id(layer) in absorbed:
            return _PassThrough(name=layer.name)
        if layer.name in plans:  # a plain Keras convolution, also for a subclass that computes its kernel
            config = dict(layer.get_config(), use_bias=True, activation="relu" if plans[layer.name][1] else "linear")
            return next(base for base in FOLDABLE if isinstance(layer, base)).from_config(config)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights or id(layer) in absorbed:
            continue
        target = folded.get_layer(layer.name)
        target.set_weights(_folded_weights(layer, plans[layer.name][0]) if layer.name in plans else layer.get_weights())
    return folded
