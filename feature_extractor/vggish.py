"""VGGish audio embeddings, as YouTube-8M's audio features were made.

The front end follows VGGish's published definition (vggish_params.py and
mel_features.py in tensorflow/models research/audioset): 16 kHz mono; a
periodic Hann window of 25 ms (400 samples) every 10 ms (160), the
magnitude of a 512-point FFT; 64 HTK-mel bands from 125 to 7500 Hz; log(mel
+ 0.01); patches of 96 frames (0.96 s) of 64 bands. `tf.signal` provides
each step (its mel matrix is built the same way, band edges in HTK mel with
the DC bin zeroed), so no FFT or filterbank is written here;
tests/test_feature_extractor.py checks it against numpy written from the
formulas.

The network is the published VGGish (four blocks of 3x3 convolutions and
2x2 max pools, two dense layers of 4096, a 128-wide linear embedding), its
weights read from the published TF 1 checkpoint `vggish_model.ckpt` by
variable name (`vggish/conv1/weights`, ...); the layer widths are read from
the checkpoint too, so a stand-in checkpoint with the same names and
smaller widths builds a smaller network. Then the published PCA
(`vggish_pca_params.npz`: `pca_eigen_vectors` [128, 128], `pca_means`
[128]), and the record's 8-bit encoding (quantization.encode).

Alignment: a record's frame k is the video at k / fps seconds; its audio
feature is the patch of the 0.96 s that start there, so frame and audio
describe the same second.
"""

import numpy as np
import tensorflow as tf
import keras

from feature_extractor import assets

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
FFT_LENGTH = 512
NUM_BANDS = 64
LOWER_HZ = 125.0
UPPER_HZ = 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
# The samples one patch reads: 96 windows, 10 ms apart, 25 ms long.
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES
EMBEDDING_SIZE = 128

# The checkpoint's layers in order; None is a 2x2 max pool.
_LAYERS = (
    "conv1",
    None,
    "conv2",
    None,
    "conv3/conv3_1",
    "conv3/conv3_2",
    None,
    "conv4/conv4_1",
    "conv4/conv4_2",
    None,
    "fc1/fc1_1",
    "fc1/fc1_2",
    "fc2",
)


def log_mel_patches(segments):
    """float32 [N, PATCH_SAMPLES] waveforms -> [N, 96, 64] log-mel patches."""
    magnitude = tf.abs(
        tf.signal.stft(
            segments,
            frame_length=WINDOW_SAMPLES,
            frame_step=HOP_SAMPLES,
            fft_length=FFT_LENGTH,
            window_fn=tf.signal.hann_window,  # periodic, as VGGish's
        )
    )
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        NUM_BANDS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, LOWER_HZ, UPPER_HZ
    )
    return tf.math.log(tf.tensordot(magnitude, mel_matrix, 1) + LOG_OFFSET)


def second_segments(audio, num_frames, frames_per_second):
    """[num_frames, PATCH_SAMPLES]: the audio that starts at each frame's time.

    `audio` starts at frame 0's time; past its end it is silence (zeros).
    """
    starts = np.round(np.arange(num_frames) * SAMPLE_RATE / frames_per_second)
    starts = starts.astype(np.int64)
    padded = np.zeros(starts[-1] + PATCH_SAMPLES, np.float32)
    usable = min(len(audio), len(padded))
    padded[:usable] = audio[:usable]
    return padded[starts[:, None] + np.arange(PATCH_SAMPLES)]


class VGGish:
    """The VGGish network and PCA from a user's download.

    embed(segments): float32 [N, PATCH_SAMPLES] -> [N, 128] PCA-whitened
    embeddings, to be encoded with quantization.encode.
    """

    def __init__(self, checkpoint_path, pca_params_path):
        self.network = _network_from_checkpoint(checkpoint_path)
        self.pca_means, self.pca_matrix = _load_pca(pca_params_path)
        self._embed = tf.function(
            lambda segments: self.network(log_mel_patches(segments)[..., None]),
            input_signature=[tf.TensorSpec([None, PATCH_SAMPLES], tf.float32)],
        )

    def raw_embeddings(self, segments):
        return self._embed(tf.constant(segments, tf.float32)).numpy()

    def embed(self, segments):
        # VGGish's postprocessor: centre, then rotate by the eigenvectors (rows).
        return (self.raw_embeddings(segments) - self.pca_means) @ self.pca_matrix.T


def _network_from_checkpoint(path):
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError) as error:
        raise assets.damaged(
            assets.VGGISH_CHECKPOINT, path, getattr(error, "message", error)
        ) from None
    shapes = reader.get_variable_to_shape_map()

    def weights(scope):
        names = [f"vggish/{scope}/weights", f"vggish/{scope}/biases"]
        absent = [name for name in names if name not in shapes]
        if absent:
            raise assets.damaged(
                assets.VGGISH_CHECKPOINT,
                path,
                f"it has no variable {absent[0]}, so it is not a VGGish checkpoint",
            )
        return [reader.get_tensor(name) for name in names]

    layers = [keras.Input((PATCH_FRAMES, NUM_BANDS, 1))]
    loaded = []
    for scope in _LAYERS:
        if scope is None:
            layers.append(keras.layers.MaxPooling2D(2, 2, padding="same"))
            continue
        kernel, bias = weights(scope)
        name = scope.split("/")[-1]
        if scope.startswith("conv"):
            layer = keras.layers.Conv2D(
                kernel.shape[-1], 3, padding="same", activation="relu", name=name
            )
        else:
            if scope == "fc1/fc1_1":
                layers.append(keras.layers.Flatten())  # [H, W, C] order, as slim's
            # fc2 is the embedding: linear (the published model's current form).
            activation = None if scope == "fc2" else "relu"
            layer = keras.layers.Dense(
                kernel.shape[-1], activation=activation, name=name
            )
        layers.append(layer)
        loaded.append((layer, [kernel, bias]))
    network = keras.Sequential(layers, name="vggish")
    try:
        for layer, values in loaded:
            layer.set_weights(values)
    except ValueError as error:
        raise assets.damaged(assets.VGGISH_CHECKPOINT, path, error) from None
    if network.output_shape[-1] != EMBEDDING_SIZE:
        raise assets.damaged(
            assets.VGGISH_CHECKPOINT,
            path,
            f"its embedding is {network.output_shape[-1]} wide, not {EMBEDDING_SIZE}",
        )
    return network


def _load_pca(path):
    try:
        with np.load(path) as params:
            matrix = params["pca_eigen_vectors"].astype(np.float32)
            means = params["pca_means"].astype(np.float32).reshape(-1)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise assets.damaged(assets.VGGISH_PCA, path, error) from None
    if matrix.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (
        EMBEDDING_SIZE,
    ):
        raise assets.damaged(
            assets.VGGISH_PCA,
            path,
            f"pca_eigen_vectors is {matrix.shape} and pca_means {means.shape}, "
            f"not ({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE},)",
        )
    return means, matrix
