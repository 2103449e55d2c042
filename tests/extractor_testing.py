"""Stand-ins for the extractor's downloads, and videos made with PyAV.

The real files (Inception-v3 of 2015-12-05, the YouTube-8M PCA, VGGish) are
a user's download and are never fetched here. These have the published
names, tensor names, variable names, formats and shapes, with random
values: a frozen graph from `DecodeJpeg:0` to `pool_3/_reshape:0` that
uses the 2015 graph's removed `BatchNormWithGlobalNormalization` op, PCA
arrays of the published shapes, and a TF 1 (V1 format, one file) VGGish
checkpoint whose widths are smaller than the real one's.
"""

import fractions
import os

import av
import numpy as np
import tensorflow as tf

# Small VGGish widths for tests (the real ones: 64, 128, 256, 512 and 4096).
SMALL_VGGISH = {"conv": (4, 8, 8, 8), "fc": 32}
FULL_VGGISH = {"conv": (64, 128, 256, 512), "fc": 4096}


def make_video(
    path,
    seconds=3.0,
    fps=10,
    size=(64, 48),
    audio_tone=440.0,
    color=(255, 0, 0),
    frame_times=None,
):
    """A video of a moving square on a background that tells the frame.

    The background's grey level is 30 x the frame's index, modulo 256, far
    enough apart to survive lossy coding (so the frames taken can be read
    back from the pixels). frame_times (seconds) give a
    variable frame rate; by default frames are 1 / fps apart. audio_tone
    None: no audio track; else a sine of that many Hz for the whole video.
    """
    if frame_times is None:
        frame_times = [i / fps for i in range(int(round(seconds * fps)))]
    with av.open(path, "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.bit_rate = 4_000_000
        video.codec_context.time_base = fractions.Fraction(1, 1000)
        if audio_tone is not None:
            audio = out.add_stream("aac", rate=16000, layout="mono")
        for i, t in enumerate(frame_times):
            image = np.full((size[1], size[0], 3), 30 * i % 256, np.uint8)
            x = int(i / max(len(frame_times), 1) * (size[0] - 16))
            image[8:40, x : x + 16] = color
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = fractions.Fraction(1, 1000)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio_tone is not None:
            rate = 16000
            t = np.arange(int(seconds * rate)) / rate
            wave = (0.5 * np.sin(2 * np.pi * audio_tone * t)).astype(np.float32)
            for start in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 1024], format="flt", layout="mono"
                )
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = fractions.Fraction(1, rate)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def inception_graph_def(seed=0, image_size=299, hidden=16):
    """A frozen GraphDef shaped like classify_image_graph_def.pb.

    DecodeJpeg/contents -> DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear
    -> Sub -> Mul -> conv -> conv/batchnorm (BatchNormWithGlobalNormalization)
    -> Relu -> 1x1 conv to 2048 -> pool_3 (AvgPool) -> pool_3/_reshape
    [1, 2048] -> a softmax head, as the 2015 graph has.
    """
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        image = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        x = tf.cast(image, tf.float32, name="Cast")
        x = tf.expand_dims(x, 0, name="ExpandDims")
        x = tf.compat.v1.image.resize_bilinear(
            x, [image_size, image_size], name="ResizeBilinear"
        )
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128.0, name="Mul")
        kernel = rng.normal(0, 0.3, (3, 3, 3, hidden)).astype(np.float32)
        x = tf.nn.conv2d(x, kernel, 4, "VALID", name="conv/Conv2D")
        stats = {
            "mean": rng.normal(0, 0.1, hidden),
            "variance": rng.uniform(0.5, 2.0, hidden),
            "beta": rng.normal(0, 0.1, hidden),
            "gamma": rng.uniform(0.5, 1.5, hidden),
        }
        for name, value in stats.items():
            tf.constant(value.astype(np.float32), name=f"conv/batchnorm/{name}")
        x = tf.identity(x, name="conv/batchnorm")
        x = tf.nn.relu(x, name="conv/relu")
        wide = rng.normal(0, 0.5, (1, 1, hidden, 2048)).astype(np.float32)
        x = tf.nn.relu(tf.nn.conv2d(x, wide, 1, "VALID", name="mixed/Conv2D"))
        x = tf.nn.avg_pool2d(x, x.shape[1:3], 1, "VALID", name="pool_3")
        x = tf.reshape(x, [1, 2048], name="pool_3/_reshape")
        logits = tf.matmul(x, rng.normal(0, 0.01, (2048, 1008)).astype(np.float32))
        tf.nn.softmax(logits, name="softmax")
    graph_def = graph.as_graph_def()
    # The op was removed from TensorFlow's graph builder: write the node by hand.
    for node in graph_def.node:
        if node.name == "conv/batchnorm":
            node.op = "BatchNormWithGlobalNormalization"
            node.input.extend(f"conv/batchnorm/{n}" for n in stats)
            node.attr["variance_epsilon"].f = 0.001
            node.attr["scale_after_normalization"].b = True
    graph_def.versions.producer = 8  # before the op's removal, as in 2015
    return graph_def


def write_yt8m_pca(model_dir, seed=0, components=1024):
    """mean.npy [2048, 1], eigenvals.npy [N, 1], eigenvecs.npy [N, 2048] (rows)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(2048, components)))
    np.save(
        os.path.join(model_dir, "mean.npy"),
        rng.uniform(0, 0.5, (2048, 1)).astype(np.float32),
    )
    eigenvals = np.sort(rng.uniform(0.01, 1.0, components))[::-1]
    np.save(
        os.path.join(model_dir, "eigenvals.npy"), eigenvals[:, None].astype(np.float32)
    )
    np.save(os.path.join(model_dir, "eigenvecs.npy"), q.T.astype(np.float32))


def vggish_variables(widths=None, seed=0):
    """{published variable name: random value} for a VGGish of these widths."""
    widths = widths or SMALL_VGGISH
    rng = np.random.default_rng(seed)
    values = {}
    conv1, conv2, conv3, conv4 = widths["conv"]
    fc = widths["fc"]
    shapes = [
        ("conv1", (3, 3, 1, conv1)),
        ("conv2", (3, 3, conv1, conv2)),
        ("conv3/conv3_1", (3, 3, conv2, conv3)),
        ("conv3/conv3_2", (3, 3, conv3, conv3)),
        ("conv4/conv4_1", (3, 3, conv3, conv4)),
        ("conv4/conv4_2", (3, 3, conv4, conv4)),
        ("fc1/fc1_1", (6 * 4 * conv4, fc)),
        ("fc1/fc1_2", (fc, fc)),
        ("fc2", (fc, 128)),
    ]
    for scope, shape in shapes:
        fan_in = int(np.prod(shape[:-1]))
        values[f"vggish/{scope}/weights"] = rng.normal(
            0, 1.0 / np.sqrt(fan_in), shape
        ).astype(np.float32)
        values[f"vggish/{scope}/biases"] = rng.normal(0, 0.05, shape[-1:]).astype(
            np.float32
        )
    return values


def write_v1_checkpoint(path, values):
    """A TF 1 checkpoint in the V1 (one-file) format, as vggish_model.ckpt is.

    Only TensorFlow 1's Saver writes that format, so this test helper uses it.
    """
    graph = tf.Graph()
    with graph.as_default():
        variables = [
            tf.compat.v1.get_variable(name, initializer=value)
            for name, value in values.items()
        ]
        saver = tf.compat.v1.train.Saver(
            variables, write_version=tf.compat.v1.train.SaverDef.V1
        )
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, path, write_meta_graph=False, write_state=False)
    return path


def write_assets(model_dir, seed=0, audio=True, vggish_widths=None):
    """Every file the extractor loads, as stand-ins, in model_dir."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "classify_image_graph_def.pb"), "wb") as f:
        f.write(inception_graph_def(seed).SerializeToString())
    write_yt8m_pca(model_dir, seed)
    if audio:
        write_v1_checkpoint(
            os.path.join(model_dir, "vggish_model.ckpt"),
            vggish_variables(vggish_widths, seed),
        )
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(128, 128)))
        np.savez(
            os.path.join(model_dir, "vggish_pca_params.npz"),
            pca_eigen_vectors=(q * 0.5).astype(np.float32),
            pca_means=rng.normal(0, 0.1, 128).astype(np.float32),
        )
    return model_dir
