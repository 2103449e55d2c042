"""The extractor's model files: found in --model_dir, unpacked, or downloaded.

The files are the user's download, as in the starter: the 2015-12-05
Inception-v3 frozen graph and the YouTube-8M PCA (images), the VGGish
checkpoint and its PCA parameters (audio). For each asset, in order:

1. its files in model_dir are used as they are;
2. else its archive in model_dir (the .tgz as published) is unpacked there;
3. else it is downloaded from its official address into model_dir, under a
   temporary name that is renamed only once the download is complete and,
   where a checksum is known, matches it.

A machine without a network takes steps 1 or 2: copy the downloads (or the
files unpacked from them) into model_dir. Every failure names the file, its
address and what to do. A file that is there but damaged (a partial copy) is
caught where it is loaded, by the loaders of feature_extractor.py and
vggish.py, which report it through `damaged`.
"""

import dataclasses
import hashlib
import os
import sys
import tarfile
import urllib.error
import urllib.request

from cli import UsageError
import atomic_files


@dataclasses.dataclass(frozen=True)
class Asset:
    """One download. `files` are what the extractor loads from model_dir.

    archive: the name of the .tgz that holds `files`, or None when the
      download is the file itself.
    sha256, size: of the download, where known; checked after a download.
    """

    what: str
    url: str
    files: tuple
    archive: str = None
    sha256: str = None
    size: int = None

    @property
    def download_name(self):
        return self.archive or self.files[0]


INCEPTION = Asset(
    what="the Inception-v3 graph of 2015-12-05",
    url="https://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz",
    files=("classify_image_graph_def.pb",),
    archive="inception-2015-12-05.tgz",
)
YT8M_PCA = Asset(
    what="the YouTube-8M PCA of the image features",
    url="http://data.yt8m.org/yt8m_pca.tgz",
    files=("mean.npy", "eigenvals.npy", "eigenvecs.npy"),
    archive="yt8m_pca.tgz",
)


def _audioset(name, what, sha256, size):
    """One file of AudioSet's bucket, where VGGish's files are served."""
    return Asset(
        what=what,
        url=f"https://storage.googleapis.com/audioset/{name}",
        files=(name,),
        sha256=sha256,
        size=size,
    )


# Google publishes no checksums for these two; the sums are those of the
# files as they are served (recorded by the Git LFS copy of
# cosmir/dev-set-builder), with the sizes they were served at.
VGGISH_CHECKPOINT = _audioset(
    "vggish_model.ckpt",
    "the VGGish checkpoint",
    "0962b1914e3e053922d957c45bc84a78c985765641dc6bceeeb3a7d8dfecfdf6",
    291108469,
)
VGGISH_PCA = _audioset(
    "vggish_pca_params.npz",
    "the VGGish PCA parameters",
    "4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d",
    73020,
)
IMAGE_ASSETS = (INCEPTION, YT8M_PCA)
AUDIO_ASSETS = (VGGISH_CHECKPOINT, VGGISH_PCA)


def damaged(asset, path, reason):
    """The error for a file that is present but cannot be loaded."""
    return UsageError(
        f"{path} ({asset.what}) cannot be read: {reason}. It is damaged or "
        f"incomplete: delete it and download {asset.url} again (or unpack "
        f"{asset.download_name} into the same directory)."
    )


def ensure(asset, model_dir, download=True):
    """The paths of the asset's files in model_dir, fetching them if needed."""
    paths = [os.path.join(model_dir, name) for name in asset.files]
    if all(os.path.exists(path) for path in paths):
        return paths
    missing = [path for path in paths if not os.path.exists(path)]
    source = os.path.join(model_dir, asset.download_name)
    if not os.path.exists(source):
        if not download:
            raise UsageError(_missing_message(asset, missing, model_dir))
        _download(asset, source, model_dir)
    if asset.archive:
        _unpack(asset, source, model_dir)
    return paths


def _missing_message(asset, missing, model_dir):
    return (
        f"{', '.join(missing)} ({asset.what}) not found in --model_dir={model_dir}. "
        f"Download {asset.url} and put it"
        + (" (or the files unpacked from it)" if asset.archive else "")
        + " in that directory."
    )


def _download(asset, target, model_dir):
    os.makedirs(model_dir, exist_ok=True)
    print(f"Downloading {asset.what} from {asset.url} ...", file=sys.stderr, flush=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with atomic_files.atomic_path(target) as tmp:
            with urllib.request.urlopen(asset.url, timeout=60) as response:
                with open(tmp, "wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            _check_download(asset, size, digest.hexdigest())
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise UsageError(
            f"could not download {asset.what} from {asset.url} ({reason}). On a "
            f"machine without a network, download {asset.download_name} elsewhere "
            f"and put it in --model_dir={model_dir}."
        ) from None
    print(f"Saved {target} ({size:,} bytes).", file=sys.stderr, flush=True)


def _check_download(asset, size, sha256):
    if asset.size is not None and size != asset.size:
        raise UsageError(
            f"the download of {asset.url} stopped at {size:,} of {asset.size:,} "
            "bytes; run again to retry."
        )
    if asset.sha256 is not None and sha256 != asset.sha256:
        raise UsageError(
            f"the download of {asset.url} has sha256 {sha256}, not the published "
            f"{asset.sha256}; it was not kept. Run again to retry."
        )


def _unpack(asset, archive, model_dir):
    """Unpacks the asset's files (and nothing else) from its archive."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {
                os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()
            }
            for name in asset.files:
                if name not in members:
                    raise UsageError(
                        f"{archive} has no {name}: it is not {asset.what}. Delete "
                        f"it and download {asset.url} again."
                    )
                with atomic_files.atomic_path(os.path.join(model_dir, name)) as tmp:
                    with tar.extractfile(members[name]) as src, open(tmp, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise damaged(asset, archive, error) from None
