"""DESOM training side: Keras 3 models (``keras.ops`` only), training loop and ONNX export."""
