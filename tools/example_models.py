"""Small Keras 3 model factories for `export_trainable_savedmodel.py --model tools.example_models:<fn>`.

Used for durable-train's shipped test fixtures and for the graph-route benchmark.
"""
import keras


def mlp(input_dim: int = 784, hidden=(128,), classes: int = 10, dropout: float = 0.0, seed: int = 1):
    """Dense ReLU layers (each followed by dropout if > 0) then a softmax: MLP 784-128-10 by default."""
    inputs = keras.Input((input_dim,), name="x")
    h = inputs
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu")(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, seed=seed + i)(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="mlp")


def regressor(input_dim: int = 4, hidden=(8,), outputs: int = 1):
    """Dense ReLU layers then a linear output: a regression model (its loss is not decided by its
    output layer, so the exporter needs `--loss`)."""
    inputs = keras.Input((input_dim,), name="x")
    h = inputs
    for units in hidden:
        h = keras.layers.Dense(units, activation="relu")(h)
    out = keras.layers.Dense(outputs)(h)
    return keras.Model(inputs, out, name="regressor")


def cnn(input_dim: int = 784, image=(28, 28, 1), filters=(8, 16), dense: int = 64, classes: int = 10):
    """Flat pixels reshaped to an image, 3x3 conv + 2x2 max-pool blocks, a dense layer, a softmax
    (conv8-pool-conv16-pool-64-10 by default: durable-train's built-in `cnn`)."""
    inputs = keras.Input((input_dim,), name="x")
    h = keras.layers.Reshape(tuple(image))(inputs)
    for f in filters:
        h = keras.layers.Conv2D(f, 3, activation="relu")(h)
        h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(dense, activation="relu")(h)
    outputs = keras.layers.Dense(classes, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="cnn")
