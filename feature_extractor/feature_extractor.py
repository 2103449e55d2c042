"""YouTube-8M features of images and videos, as the dataset's were made.

Images: the 2015-12-05 Inception-v3 frozen graph (`classify_image_graph_def.pb`:
an RGB frame in at `DecodeJpeg:0`, any size, which the graph resizes to
299 x 299; 2048 values out at `pool_3/_reshape:0`), then the dataset's PCA
(`mean.npy`, `eigenvals.npy`, `eigenvecs.npy`): centre on the mean, project
on the first 1024 eigenvectors, divide by sqrt(eigenvalue + 1e-4). Audio:
VGGish (vggish.py). Both are encoded to bytes by quantization.encode.

The 2015 graph on TensorFlow 2: it imports, but its batch normalisations are
`BatchNormWithGlobalNormalization`, an op TensorFlow removed at GraphDef
version 9; TF 2.21 refuses to run it inside a function ("not available in
GraphDef version 2474"). Each such node is rewritten into the op's own
formula, (t - mean) * rsqrt(variance + epsilon) [* gamma] + beta, before
the graph is imported. The graph then runs as a TF 2 function
(tf.compat.v1.wrap_function), with no session, fed one frame at a time at
`DecodeJpeg:0` as the starter fed it: batches of frames (fed where the
graph's own batched frame enters its resize) were slower on 2 CPU cores
(docs/feature_extraction.md).
"""

import dataclasses
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

import quantization
from feature_extractor import assets
from feature_extractor import video_decoding
from feature_extractor import vggish

DEFAULT_MODEL_DIR = os.path.join(os.path.expanduser("~"), "yt8m")
BOTTLENECK_SIZE = 2048
RGB_SIZE = 1024
AUDIO_SIZE = vggish.EMBEDDING_SIZE


class YouTube8MFeatureExtractor:
    """Inception-v3 and the YouTube-8M PCA from model_dir (the starter's class).

    The files are found in model_dir, unpacked from their archives there, or
    downloaded into it (assets.py); download=False refuses to download.
    """

    def __init__(self, model_dir=DEFAULT_MODEL_DIR, download=True):
        (graph_path,) = assets.ensure(assets.INCEPTION, model_dir, download)
        pca_paths = assets.ensure(assets.YT8M_PCA, model_dir, download)
        self.pca_mean, self.pca_eigenvals, self.pca_eigenvecs = _load_pca(*pca_paths)
        self._pool_3 = _load_inception(graph_path)

    def pool_3(self, frames_rgb):
        """uint8 [N, H, W, 3] RGB frames -> float32 [N, 2048] (Inception's pool_3)."""
        frames_rgb = np.asarray(frames_rgb, np.uint8)
        return np.stack([self._pool_3(tf.constant(f)).numpy()[0] for f in frames_rgb])

    def apply_pca(self, frame_features):
        """[..., 2048] -> [..., 1024]: centre, project, whiten."""
        centred = np.asarray(frame_features, np.float32) - self.pca_mean
        return (centred @ self.pca_eigenvecs) / np.sqrt(self.pca_eigenvals + 1e-4)

    def frame_features(self, frames_rgb):
        """uint8 [N, H, W, 3] RGB frames -> float32 [N, 1024] features."""
        return self.apply_pca(self.pool_3(frames_rgb))

    def extract_rgb_frame_features(self, frame_rgb, apply_pca=True):
        """One uint8 [H, W, 3] RGB frame -> [1024] (or [2048] without PCA)."""
        features = self.pool_3(np.asarray(frame_rgb)[None])
        return (self.apply_pca(features) if apply_pca else features)[0]


@dataclasses.dataclass
class VideoFeatures:
    """One video's features, as a record holds them.

    rgb, audio: uint8 [num_frames, 1024] and [num_frames, 128]; audio is None
      when the video has no audio track or audio features were not asked for.
    mean_rgb, mean_audio: float32, the mean of the features before encoding.
    seconds: time spent decoding, in the image network and in audio.
    """

    rgb: np.ndarray
    mean_rgb: np.ndarray
    audio: Optional[np.ndarray]
    mean_audio: Optional[np.ndarray]
    seconds: dict


class VideoFeatureExtractor:
    """Video files -> VideoFeatures: decoding, Inception + PCA, and VGGish."""

    def __init__(
        self, model_dir, frames_per_second=1, max_frames=300, audio=True, download=True
    ):
        self.images = YouTube8MFeatureExtractor(model_dir, download)
        self.audio = None
        if audio:
            checkpoint = assets.ensure(assets.VGGISH_CHECKPOINT, model_dir, download)
            pca = assets.ensure(assets.VGGISH_PCA, model_dir, download)
            self.audio = vggish.VGGish(checkpoint[0], pca[0])
        self.frames_per_second = frames_per_second
        self.max_frames = max_frames

    def extract(self, path):
        """Raises video_decoding.BadVideo for a file that gives no frame."""
        start = time.perf_counter()
        video = video_decoding.decode(
            path, self.frames_per_second, self.max_frames, with_audio=bool(self.audio)
        )
        decoded = time.perf_counter()
        rgb = self.images.frame_features(video.frames)
        imaged = time.perf_counter()
        audio = None
        if self.audio is not None and video.audio is not None:
            audio = self.audio.embed(
                vggish.second_segments(video.audio, len(rgb), self.frames_per_second)
            )
        return VideoFeatures(
            rgb=quantization.encode(rgb),
            mean_rgb=rgb.mean(axis=0),
            audio=None if audio is None else quantization.encode(audio),
            mean_audio=None if audio is None else audio.mean(axis=0),
            seconds={
                "decode": decoded - start,
                "images": imaged - decoded,
                "audio": time.perf_counter() - imaged,
            },
        )


def _load_pca(mean_path, eigenvals_path, eigenvecs_path):
    def load(path):
        try:
            return np.load(path).astype(np.float32)
        except (OSError, ValueError, EOFError) as error:
            raise assets.damaged(assets.YT8M_PCA, path, error) from None

    mean, eigenvals, eigenvecs = map(load, (mean_path, eigenvals_path, eigenvecs_path))
    for path, array, rows, columns in (
        (mean_path, mean, BOTTLENECK_SIZE, 1),
        (eigenvals_path, eigenvals, RGB_SIZE, 1),
        (eigenvecs_path, eigenvecs, RGB_SIZE, BOTTLENECK_SIZE),
    ):
        # The starter keeps the first 1024 components of however many.
        too_few = array.ndim != 2 or array.shape[0] < rows
        if (
            too_few
            or array.shape[1] != columns
            or (path is mean_path and array.shape[0] != rows)
        ):
            raise assets.damaged(
                assets.YT8M_PCA,
                path,
                f"its shape is {list(array.shape)}, not [{rows} or more, {columns}]",
            )
    # Rows of eigenvecs.npy are eigenvectors, sorted by eigenvalue.
    return mean[:, 0], eigenvals[:RGB_SIZE, 0], eigenvecs.T[:, :RGB_SIZE].copy()


def _load_inception(path):
    """The graph as a TF 2 function: uint8 [H, W, 3] frame -> [1, 2048] pool_3."""
    try:
        with open(path, "rb") as f:
            graph_def = tf.compat.v1.GraphDef.FromString(f.read())
    except (OSError, DecodeError) as error:
        raise assets.damaged(assets.INCEPTION, path, error) from None
    names = {node.name for node in graph_def.node}
    if not {"DecodeJpeg", "pool_3/_reshape"} <= names:
        raise assets.damaged(
            assets.INCEPTION,
            path,
            "it has no DecodeJpeg or pool_3/_reshape, so it is not the "
            "Inception-v3 graph",
        )
    _rewrite_global_batch_norms(graph_def)

    def pool_3_of(frame):
        (pooled,) = tf.graph_util.import_graph_def(
            graph_def,
            input_map={"DecodeJpeg:0": frame},
            return_elements=["pool_3/_reshape:0"],
            name="",
        )
        return pooled

    return tf.compat.v1.wrap_function(
        pool_3_of, [tf.TensorSpec([None, None, 3], tf.uint8)]
    )


def _rewrite_global_batch_norms(graph_def):
    """BatchNormWithGlobalNormalization -> the same formula in current ops.

    The last new node keeps the old node's name, so its consumers still
    find it.
    """
    old = [n for n in graph_def.node if n.op == "BatchNormWithGlobalNormalization"]
    for node in old:
        t, mean, variance, beta, gamma = node.input[:5]
        dtype = node.attr["T"].type
        name = node.name

        def add(suffix, op, inputs):
            new = graph_def.node.add(name=f"{name}/{suffix}", op=op, input=inputs)
            new.attr["T"].type = dtype
            return new.name

        epsilon = graph_def.node.add(name=f"{name}/epsilon", op="Const")
        epsilon.attr["dtype"].type = dtype
        epsilon.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(node.attr["variance_epsilon"].f, tf.as_dtype(dtype))
        )
        scale = add(
            "rsqrt", "Rsqrt", [add("var_eps", "AddV2", [variance, epsilon.name])]
        )
        if node.attr["scale_after_normalization"].b:
            scale = add("scale", "Mul", [scale, gamma])
        scaled = add("scaled", "Mul", [add("centred", "Sub", [t, mean]), scale])
        node.op = "AddV2"
        del node.input[:]
        node.input.extend([scaled, beta])
        for key in list(node.attr):
            if key != "T":
                del node.attr[key]
