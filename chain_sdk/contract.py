"""The model contract: what a model directory promises its runtime (docs/architecture.md).

`model.json` (written by `chain-export onnx|quantize`) and `engine.json` (`chain-export trt`)
carry it, and every ONNX graph repeats it in `metadata_props` (values as strings, the format
version under `chain_sdk.format_version`). The runtime reads it with `read_model_dir`, and
refuses -- with `ModelMismatchError` / `ModelError` and the reason -- anything it cannot honour
instead of producing wrong codes.

numpy/json only at import time: `onnx` / `onnxruntime` are imported lazily by
`check_onnx_metadata`, so `import chain_sdk` stays light on a Jetson.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chain_sdk.errors import ModelError, ModelMismatchError
from chain_sdk.files import sha256_of, write_text

FORMAT = "chain-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ENGINE_JSON = "engine.json"
METADATA_PREFIX = "chain_sdk."
COLOR_ORDERS = ("BGR", "RGB")
NORMALIZATIONS = ("(x-127)/128",)
PRECISIONS = ("fp32", "fp16", "int8")
GRAPH_ROLES = ("backbone", "temporal", "chain")

# Contract fields compared between model.json and the ONNX metadata of each graph.
CONTRACT_KEYS = (
    "format_version", "bits", "frames", "feature_dim", "input_height", "input_width",
    "color_order", "normalization", "backbone", "model_version", "precision",
)


@dataclass
class ModelContract:
    """What the graphs of a model directory take and give. `graphs` maps role -> file name."""

    bits: int
    frames: int
    feature_dim: int
    input_height: int
    input_width: int
    color_order: str = "BGR"
    normalization: str = "(x-127)/128"
    backbone: str = "efficientnet_lite0"
    model_version: str = "unversioned"
    precision: str = "fp32"
    format_version: int = FORMAT_VERSION
    graphs: dict[str, str] = field(default_factory=dict)
    # file name -> sha256 of each graph file, written by write_model_json and checked on read:
    # a graph changed or damaged after export is refused instead of giving other codes.
    sha256: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # directory it was read from (not serialised)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. engine.json's TensorRT build info

    def __post_init__(self) -> None:
        self.validate()

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)

    @property
    def code_bytes(self) -> int:
        return self.bits // 8

    def validate(self) -> None:
        """Raise ModelMismatchError for values this runtime cannot honour."""
        problems = []
        if self.format_version != FORMAT_VERSION:
            problems.append(f"format_version {self.format_version!r} (this chain-sdk reads {FORMAT_VERSION})")
        if not (isinstance(self.bits, int) and 16 <= self.bits <= 256 and self.bits % 8 == 0):
            problems.append(f"bits {self.bits!r} (a multiple of 8 in 16..256)")
        for name in ("frames", "feature_dim", "input_height", "input_width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                problems.append(f"{name} {value!r} (a positive integer)")
        if self.color_order not in COLOR_ORDERS:
            problems.append(f"color_order {self.color_order!r} (one of {COLOR_ORDERS})")
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization {self.normalization!r} (one of {NORMALIZATIONS})")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} (one of {PRECISIONS})")
        unknown_roles = set(self.graphs) - set(GRAPH_ROLES)
        if unknown_roles:
            problems.append(f"graph roles {sorted(unknown_roles)} (known: {GRAPH_ROLES})")
        if problems:
            raise ModelMismatchError("unsupported model contract: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        if not data["extra"]:
            data.pop("extra")
        return {"format": FORMAT, **data}

    def metadata(self) -> dict[str, str]:
        """The ONNX `metadata_props` form: strings, format version namespaced."""
        meta = {k: str(getattr(self, k)) for k in CONTRACT_KEYS if k != "format_version"}
        return {METADATA_PREFIX + "format_version": str(self.format_version), **meta}

    def graph_path(self, role: str) -> Path:
        if role not in self.graphs:
            raise ModelError(f"model has no {role!r} graph (has {sorted(self.graphs)})")
        return (self.root or Path(".")) / self.graphs[role]

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: Path | None = None) -> "ModelContract":
        known = {f.name for f in fields(cls)} - {"root"}
        values = {k: v for k, v in data.items() if k in known}
        missing = [k for k in ("bits", "frames", "feature_dim", "input_height", "input_width") if k not in values]
        if missing:
            raise ModelError(f"model contract lacks {missing}")
        try:
            return cls(**values, root=root)
        except TypeError as exc:
            raise ModelError(f"malformed model contract: {exc}") from exc


def write_model_json(directory: str | os.PathLike, contract: ModelContract, name: str = MODEL_JSON) -> Path:
    """Write the contract as `model.json` (or `engine.json`) atomically, with the sha256 of every
    graph file already written (write the graphs first; read_model_dir refuses missing ones)."""
    root = Path(directory)
    contract.sha256 = {f: sha256_of(root / f) for f in sorted(set(contract.graphs.values())) if (root / f).is_file()}
    return write_text(Path(directory) / name, json.dumps(contract.to_dict(), indent=2) + "\n")


def read_model_dir(path: str | os.PathLike) -> ModelContract:
    """Read and validate a model directory (`model.json`) or engine directory (`engine.json`)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"{root}: model directory not found")
    for name in (MODEL_JSON, ENGINE_JSON):
        if (root / name).is_file():
            json_path = root / name
            break
    else:
        raise ModelError(f"{root}: no {MODEL_JSON} or {ENGINE_JSON} (not a chain-sdk model directory)")
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{json_path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{json_path}: format is {data.get('format') if isinstance(data, dict) else data!r}, expected {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelMismatchError(
            f"{json_path}: format_version {data.get('format_version')!r} is not supported "
            f"(this chain-sdk reads version {FORMAT_VERSION}); re-export the model"
        )
    try:
        contract = ModelContract.from_dict(data, root=root)
    except ModelMismatchError as exc:
        raise ModelMismatchError(f"{json_path}: {exc}") from exc
    if not contract.graphs:
        raise ModelError(f"{json_path}: lists no graphs")
    absent = [f for f in contract.graphs.values() if not (root / f).is_file()]
    if absent:
        raise ModelError(f"{root}: graph files listed in {json_path.name} are missing: {absent}")
    for f, expected in contract.sha256.items():
        if (root / f).is_file() and sha256_of(root / f) != expected:
            raise ModelError(f"{root / f}: sha256 differs from the one {json_path.name} recorded at export "
                             "(the file was modified or damaged); re-export the model")
    return contract


def set_onnx_metadata(proto: Any, contract: ModelContract, doc: str) -> None:
    """Replace an onnx ModelProto's metadata_props with the contract (strings); set its doc string."""
    del proto.metadata_props[:]
    for key, value in contract.metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = doc


def read_onnx_metadata(graph_path: str | os.PathLike) -> dict[str, str]:
    """`metadata_props` of an ONNX file (onnx if installed, else onnxruntime), without its weights."""
    path = Path(graph_path)
    if not path.is_file():
        raise ModelError(f"{path}: graph file not found")
    try:
        import onnx
    except ImportError:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for foreign files
        raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    return {p.key: p.value for p in model.metadata_props}


def contract_from_metadata(meta: dict[str, str]) -> dict[str, str]:
    """Contract keys of an ONNX metadata map (accepts prefixed and plain key spellings)."""
    out = {}
    for key in CONTRACT_KEYS:
        for spelled in (METADATA_PREFIX + key, key):
            if spelled in meta:
                out[key] = meta[spelled]
                break
    return out


def check_onnx_metadata(graph_path: str | os.PathLike, contract: ModelContract) -> None:
    """Refuse (ModelMismatchError) a graph whose metadata disagrees with, or lacks, the contract."""
    found = contract_from_metadata(read_onnx_metadata(graph_path))
    expected = {k: v for k, v in contract.metadata().items()}
    expected = contract_from_metadata(expected)
    missing = [k for k in expected if k not in found]
    if missing:
        raise ModelMismatchError(f"{graph_path}: ONNX metadata lacks the contract keys {missing}")
    differ = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
    if differ:
        details = ", ".join(f"{k}: graph says {a!r}, model.json says {b!r}" for k, (a, b) in differ.items())
        raise ModelMismatchError(f"{graph_path}: contract mismatch ({details})")
