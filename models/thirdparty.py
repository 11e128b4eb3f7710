"""Fetch real third-party ONNX models from their PyPI packages into an ignored cache.

Nothing fetched here is committed: wheels go to ``<cache>/wheels/`` and the extracted models to
``<cache>/thirdparty/<key>.onnx``, where ``<cache>`` is ``$ONNXSHAP_CACHE`` or ``<repo root>/.cache``.

    >>> from models.thirdparty import fetch
    >>> path = fetch("ppocr_det")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["CATALOGUE", "FetchError", "ThirdPartyModel", "available", "cache_dir", "fetch"]

_REPO_ROOT = Path(__file__).resolve().parent.parent
_FAILED: dict[tuple[str, Path], str] = {}  # (requirement, wheels dir) -> message of a failed pip download


class FetchError(RuntimeError):
    """A third-party model could not be fetched (pip failed, no network, member missing)."""


@dataclass(frozen=True)
class ThirdPartyModel:
    """One ONNX file shipped inside a pinned PyPI release."""

    key: str
    package: str
    version: str
    member: str  # path inside the wheel (for an sdist: inside its top-level folder)
    producer: str
    notes: str = ""
    sdist: bool = False  # the release ships only a .tar.gz

    @property
    def requirement(self) -> str:
        """The pip requirement string, ``package==version``."""
        return f"{self.package}=={self.version}"


def _light(name: str, notes: str) -> ThirdPartyModel:
    """Catalogue entry for one model of onnx's backend-test 'light' zoo."""
    return ThirdPartyModel(
        key=f"light_{name}",
        package="onnx",
        version="1.23.2",
        member=f"onnx/backend/test/data/light/light_{name}.onnx",
        producer="Caffe2 (onnx-caffe2)",
        notes="onnx backend-test 'light' zoo: real architecture, fake constant weights "
        "(ConstantOfShape), opset 9, structure tests only. " + notes,
    )


_ENTRIES: tuple[ThirdPartyModel, ...] = (
    _light("squeezenet", "SqueezeNet 1.0: 26 Conv, Conv->Relu, fire-module Concat; batch-stackable."),
    _light("inception_v1", "GoogLeNet: 57 Conv, Conv->Relu, LRN, inception Concat; Reshape fixes batch 1."),
    _light("inception_v2", "BN-Inception: 69 Conv, Conv->BN->Mul->Add->Relu; Reshape fixes batch 1."),
    _light("resnet50", "ResNet-50: 53 Conv, Conv->BN->(Relu | Sum residual); Reshape fixes batch 1."),
    _light("densenet121", "DenseNet-121: 121 Conv, Conv->(Concat | BN->Mul->Add->Relu); batch-stackable."),
    _light("shufflenet", "ShuffleNet v1: 49 Conv (48 grouped, 16 depthwise), Reshape/Transpose shuffle."),
    _light("vgg19", "VGG-19: 16 Conv + 3 Gemm, Conv->Relu; Reshape fixes batch 1."),
    _light("bvlc_alexnet", "AlexNet: 5 Conv (3 with group=2) + 3 Gemm, LRN; Reshape fixes batch 1."),
    _light("zfnet512", "ZFNet-512: 5 Conv + 3 Gemm, LRN; Reshape fixes batch 1."),
    ThirdPartyModel(
        key="ppocr_det",
        package="rapidocr-onnxruntime",
        version="1.4.4",
        member="rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        producer="PaddlePaddle (paddle2onnx)",
        notes="PP-OCRv4 mobile text detector (DB, PP-LCNetV3 backbone, RSE-FPN): x [N,3,H,W] (H,W multiples "
        "of 32) -> sigmoid map [N,1,H,W]; opset 12; 62 Conv + 2 ConvTranspose, weights via Constant nodes; "
        "hard-swish decomposed as Add/Clip/Mul/Div.",
    ),
    ThirdPartyModel(
        key="ppocr_rec",
        package="rapidocr-onnxruntime",
        version="1.4.4",
        member="rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        producer="PaddlePaddle (paddle2onnx)",
        notes="PP-OCRv4 mobile text recognizer (PP-LCNetV3 + SVTR neck, CTC): x [N,3,48,W] -> softmax "
        "[N,W/8,6625]; opset 12; 38 Conv (weights via Constant nodes) + 13 MatMul.",
    ),
    ThirdPartyModel(
        key="ppocr_cls",
        package="rapidocr-onnxruntime",
        version="1.4.4",
        member="rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        producer="PaddlePaddle (paddle2onnx)",
        notes="PP-OCR mobile v2.0 text-direction classifier (MobileNetV3-small, SE blocks): x [N,3,48,192] "
        "-> [N,2]; opset 11; 53 Conv, Conv->BN->(Relu | decomposed hard-swish), weights via Constant nodes.",
    ),
    ThirdPartyModel(
        key="ppocrv6_det",
        package="rapidocr",
        version="3.10.0",
        member="rapidocr/models/PP-OCRv6_det_small.onnx",
        producer="PaddlePaddle (paddle2onnx, PIR exporter)",
        notes="PP-OCRv6 small text detector shipped by rapidocr 3.x: x [N,3,H,W] -> [N,1,H,W]; opset 11; "
        "83 Conv + 2 ConvTranspose with initializer weights, bias as a separate Add, Identity nodes, GELU via Erf.",
    ),
    ThirdPartyModel(
        key="ppocrv6_rec",
        package="rapidocr",
        version="3.10.0",
        member="rapidocr/models/PP-OCRv6_rec_small.onnx",
        producer="PaddlePaddle (paddle2onnx, PIR exporter)",
        notes="PP-OCRv6 small text recognizer shipped by rapidocr 3.x: x [N,3,48,W] -> [N,W/8,18710]; "
        "opset 11; 57 Conv (initializer weights) + 13 MatMul.",
    ),
    ThirdPartyModel(
        key="silero_vad",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad.onnx",
        producer="PyTorch (rewritten with spox)",
        notes="Silero VAD v6 streaming, 16 kHz and 8 kHz in the two branches of one If on sr: all 12 Conv1d "
        "(STFT basis + 4 encoder + 1 decoder per branch) and the LSTMs live inside If subgraphs, weights via "
        "Constant nodes there; input [N,512], state [2,N,128], sr int64 scalar; opset 16.",
    ),
    ThirdPartyModel(
        key="silero_vad_half",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad_half.onnx",
        producer="PyTorch 2.3.1",
        notes="Silero VAD 16 kHz-only streaming model (float32 despite the name: 'half' = one of the two "
        "sample rates); 6 Conv1d in the main graph with initializer weights, LSTM inside If; no sr input.",
    ),
    ThirdPartyModel(
        key="silero_vad_op15",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad_16k_op15.onnx",
        producer="PyTorch 2.3.1",
        notes="Silero VAD 16 kHz opset 15: 6 Conv1d in the main graph (initializers), LSTM inside If; "
        "inputs input, state, sr.",
    ),
    ThirdPartyModel(
        key="silero_vad_op18",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad_op18_ifless.onnx",
        producer="PyTorch 2.9 (dynamo exporter)",
        notes="Silero VAD opset 18 'ifless': one If on sr left, 16k/8k models in its branches; Conv1d weights "
        "are outer-scope initializers of the main graph; LSTM cell unrolled into Gemm + Sigmoid/Tanh.",
    ),
    ThirdPartyModel(
        key="silero_vad_sequence",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad_16k_sequence.onnx",
        producer="PyTorch 2.11",
        notes="Silero VAD 16 kHz sequence model: flat graph (no If), input [frames,576] (512 + 64 context), "
        "h/c [1,1,128] -> speech_probs [frames]; 6 Conv1d + 1 LSTM.",
    ),
    ThirdPartyModel(
        key="silero_vad_openvino",
        package="silero-vad",
        version="6.2.3",
        member="silero_vad/data/silero_vad_openvino_16k.onnx",
        producer="PyTorch (rewritten with spox)",
        notes="Silero VAD 16 kHz for OpenVINO: flat graph (no If), fixed input [1,576], state [2,1,128]; "
        "6 Conv1d with Constant-node weights + 1 LSTM.",
    ),
    ThirdPartyModel(
        key="ddddocr_ocr",
        package="ddddocr",
        version="1.6.1",
        member="ddddocr/common.onnx",
        producer="PyTorch 1.9",
        notes="ddddocr 'beta' captcha OCR: 21 Conv (BN folded, SiLU as Sigmoid*Mul, residual Add) + LSTM + "
        "Gemm, float32; input1 [1,1,64,W] (batch declared 1, runs with N) -> logits [W/8,N,8210] (the "
        "declared output shape [1,seqlen] is wrong).",
    ),
    ThirdPartyModel(
        key="ddddocr_ocr_int8",
        package="ddddocr",
        version="1.6.1",
        member="ddddocr/common_old.onnx",
        producer="PyTorch, then onnxruntime dynamic quantization (onnx.quantize 0.1.0)",
        notes="ddddocr default captcha OCR, dynamically quantized: 21 ConvInteger (per-tensor uint8 weights) -> "
        "int32 bias Add -> Cast -> Mul(scale) -> SiLU, MatMulInteger, com.microsoft DynamicQuantizeLSTM; "
        "per-tensor DynamicQuantizeLinear couples the samples of a batch.",
    ),
    ThirdPartyModel(
        key="ddddocr_det",
        package="ddddocr",
        version="1.6.1",
        member="ddddocr/common_det.onnx",
        producer="PyTorch 1.9",
        notes="ddddocr YOLOX-style detector: images [1,3,416,416] -> [1,3549,6]; 83 Conv (BN folded, "
        "SiLU as Sigmoid*Mul); a Reshape hard-codes batch 1 (N>1 is silently folded into the anchors).",
    ),
)

CATALOGUE: dict[str, ThirdPartyModel] = {entry.key: entry for entry in _ENTRIES}


def available() -> list[str]:
    """Return the catalogue keys, sorted."""
    return sorted(CATALOGUE)


def cache_dir() -> Path:
    """Return the cache root: ``$ONNXSHAP_CACHE`` if set, else ``<repo root>/.cache``."""
    env = os.environ.get("ONNXSHAP_CACHE")
    return Path(env).expanduser() if env else _REPO_ROOT / ".cache"


def _normalise(name: str) -> str:
    """Normalise a distribution name the way wheel/sdist file names spell it."""
    return name.lower().replace("-", "_").replace(".", "_")


def _find_archive(wheels: Path, entry: ThirdPartyModel) -> Path | None:
    """Return an already-downloaded wheel or sdist of ``entry``, if any."""
    if not wheels.is_dir():
        return None
    want = _normalise(entry.package)
    for path in sorted(wheels.iterdir()):
        name = path.name
        if name.endswith(".whl"):
            dist, _, rest = name.partition("-")
            version = rest.partition("-")[0]
        elif name.endswith(".tar.gz"):
            dist, _, version = name[: -len(".tar.gz")].rpartition("-")
        else:
            continue
        if _normalise(dist) == want and version == entry.version:
            return path
    return None


def _pip_download(entry: ThirdPartyModel, wheels: Path) -> None:
    """Run ``pip download`` for ``entry`` into the folder ``wheels``; raise FetchError on failure."""
    binary = "--no-binary=:all:" if entry.sdist else "--only-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary, entry.requirement]
    # Bounded retries/timeout: without network, fail in about a minute instead of pip's long default.
    cmd += ["-d", str(wheels), "--progress-bar", "off", "--retries", "2", "--timeout", "30"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"cannot run pip to fetch {entry.requirement}: {exc}") from exc
    if proc.returncode != 0:
        raise FetchError(
            f"pip download {entry.requirement} failed (exit {proc.returncode}): {_pip_reason(proc)}"
        )


def _pip_reason(proc: subprocess.CompletedProcess[str]) -> str:
    """One line saying why pip failed: its last ERROR line, plus the network cause if it retried."""
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    reason = (errors or lines or ["no output"])[-1]
    retries = [ln for ln in lines if "Retrying" in ln]
    if retries:
        kind = re.search(r"\b(\w+(?:Error|Exception))\b", retries[-1])
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", retries[-1])
        cause = ": ".join(m.group(1).strip() for m in (kind, errno) if m) or "connection failed"
        reason += f" (network: {cause})"
    return reason


def _download(entry: ThirdPartyModel, wheels: Path) -> Path:
    """Return the wheel/sdist of ``entry``, downloading it only if not cached."""
    found = _find_archive(wheels, entry)
    if found is not None:
        return found
    # A failed download is not retried within this process: without network, each pip call can take
    # a minute, and a test session asks for the same wheel once per model it holds.
    failed = _FAILED.get((entry.requirement, wheels))
    if failed is not None:
        raise FetchError(failed)
    wheels.mkdir(parents=True, exist_ok=True)
    # Download into a private folder and move the archive in atomically, so that a concurrent or
    # interrupted fetch never leaves a partial wheel where _find_archive would trust it.
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=wheels) as tmp:
        try:
            _pip_download(entry, Path(tmp))
        except FetchError as exc:
            _FAILED[(entry.requirement, wheels)] = str(exc)
            raise
        got = _find_archive(Path(tmp), entry)
        if got is None:
            raise FetchError(f"pip reported success but left no archive of {entry.requirement}")
        os.replace(got, wheels / got.name)
    return wheels / got.name


def _atomic_write(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``dest`` through a temporary file in the same folder, then os.replace it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cached models are ordinary readable files
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _extract(archive: Path, member: str, dest: Path) -> None:
    """Copy ``member`` out of a wheel (zip) or sdist (tar.gz) to ``dest`` atomically."""
    try:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise FetchError(f"{member} is not in {archive.name}") from None
                with zf.open(info) as src:
                    _atomic_write(dest, lambda out: shutil.copyfileobj(src, out))
            return
        with tarfile.open(archive, "r:gz") as tf:
            names = {m.name.partition("/")[2]: m for m in tf.getmembers() if m.isfile()}
            tar_member = names.get(member)
            src = tf.extractfile(tar_member) if tar_member is not None else None
            if src is None:
                raise FetchError(f"{member} is not in {archive.name}")
            with src:
                _atomic_write(dest, lambda out: shutil.copyfileobj(src, out))
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise FetchError(f"cannot read {member} from {archive.name}: {exc}") from exc


def _installed_copy(entry: ThirdPartyModel) -> Path | None:
    """Return the member inside the installed onnx package, if present (onnx entries only)."""
    if entry.package != "onnx":
        return None
    import onnx  # dependency of the project; imported lazily to keep this module cheap

    candidate = Path(onnx.__file__).resolve().parent.parent / entry.member
    return candidate if candidate.is_file() else None


def fetch(key: str) -> Path:
    """Return the local path of catalogue model ``key``, fetching it into the cache if needed.

    Raises KeyError for an unknown key and FetchError when the package cannot be obtained.
    """
    try:
        entry = CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown third-party model {key!r}; available: {', '.join(available())}") from None
    root = cache_dir()
    dest = root / "thirdparty" / f"{key}.onnx"
    if dest.is_file():
        return dest
    installed = _installed_copy(entry)
    if installed is not None:
        with installed.open("rb") as src:
            _atomic_write(dest, lambda out: shutil.copyfileobj(src, out))
        return dest
    archive = _download(entry, root / "wheels")
    _extract(archive, entry.member, dest)
    return dest


if __name__ == "__main__":  # pragma: no cover - convenience: python -m models.thirdparty [KEY ...]
    for _key in sys.argv[1:] or available():
        try:
            print(f"{_key}\t{fetch(_key)}")
        except FetchError as _exc:
            print(f"{_key}\tFAILED: {_exc}", file=sys.stderr)
