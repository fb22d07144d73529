"""Public upstream models that can be named instead of given as files, with their pins.

Each entry names the file(s) a model needs, the sha256 every copy must hash to, and, where
a Hugging Face mirror is known, where `huggingface_hub` fetches it. A pin is only written
here when a published sha256 was found for that exact file (the `source` says where);
files without a known mirror are still pinned, and the user places them by hand (the
offline message says how). Nothing here downloads: `mdxmix.upstream` resolves entries.

Models the paper mixes (Nakano & Goto 2024, Table 1):
  B  ResUNet143 Subband vocals (bytesep)   -> resunet:resunet143_vocals (no published sha256)
  C  KUIELab-MDX-Net, leaderboard A        -> mdxnet-onnx:kuielab_a (four ONNX networks)
  D  Hybrid Demucs `mdx`                   -> demucs:mdx (family "demucs")
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnownFile:
    """One file of a named model: its name on disk, pinned content, and where to get it."""

    filename: str
    sha256: str | None
    size: int | None = None
    hub: dict | None = None  # {"repo_id", "filename", "revision"} for hf_hub_download
    manual: str = ""  # where a person downloads it when no hub mirror is pinned
    source: str = ""  # where the sha256 was published


@dataclass(frozen=True)
class KnownModel:
    """A named upstream: family, the stems it yields, its files and family-specific settings."""

    name: str
    family: str
    stems: tuple[str, ...]
    files: tuple[KnownFile, ...]
    settings: dict = field(default_factory=dict)
    description: str = ""


# UVR's model repository (GitHub release `all_public_uvr_models` of TRvlvr/model_repo) is
# where UVR and python-audio-separator download MDX-Net ONNX files from.
UVR_RELEASE = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
# sha256 + size of the kuielab_a ONNX files as published by flarkflarkflark/STEMwerk-Android
# (ModelManager.kt, which downloads them from UVR_RELEASE and checks these values).
_STEMWERK = "sha256 published in flarkflarkflark/STEMwerk-Android ModelManager.kt"

# MDX-Net framing of the kuielab leaderboard-A networks: n_fft = dim_f * scale with the
# per-target scales of kuielab/mdx-net-submission (bass 8, drums 2, other 4, vocals 3),
# dim_f = 2^11, dim_t = 2^7 for drums and 2^8 for the others, hop 1024; UVR's model data
# gives the same n_fft and dim_f and a compensation of 1.035 for all four. dim_t only sets
# the chunk length; where the file's input has a fixed time axis, the file's value is used.
_KUIELAB_A = {
    "vocals": {"n_fft": 6144, "dim_f": 2048, "dim_t": 256, "hop": 1024, "compensate": 1.035,
               "sha256": "daba83c2ee1afee9139766ad64c9b6808d6b6f092fff04bed3338be50baac721"},
    "drums": {"n_fft": 4096, "dim_f": 2048, "dim_t": 128, "hop": 1024, "compensate": 1.035,
              "sha256": "40f586b7091934dd6f5563f0cba8f14bad57ce88440da1098bf388ea716c2901"},
    "bass": {"n_fft": 16384, "dim_f": 2048, "dim_t": 256, "hop": 1024, "compensate": 1.035,
             "sha256": "0c3e77b9963185b1ea6bb46a4b8924137d9370fc1ccdefec7b1b416ef550dcaa"},
    "other": {"n_fft": 8192, "dim_f": 2048, "dim_t": 256, "hop": 1024, "compensate": 1.035,
              "sha256": "7b67a1dcb5f232153528c59960b4c7bf8dc736b8114de360af0e719633f53358"},
}
# Only the vocals network has a Hugging Face mirror we could confirm (seanghay/uvr_models).
_KUIELAB_HUB = {"vocals": {"repo_id": "seanghay/uvr_models", "filename": "kuielab_a_vocals.onnx"}}


def _kuielab_file(stem: str) -> KnownFile:
    name = f"kuielab_a_{stem}.onnx"
    return KnownFile(
        filename=name, sha256=_KUIELAB_A[stem]["sha256"], size=29703204, hub=_KUIELAB_HUB.get(stem),
        manual=UVR_RELEASE + name, source=_STEMWERK,
    )


def _kuielab_settings(stems: tuple[str, ...]) -> dict:
    return {
        f"kuielab_a_{s}.onnx": {"target": s, **{k: v for k, v in _KUIELAB_A[s].items() if k != "sha256"}}
        for s in stems
    }


# BS-RoFormer by viperx (vocals, 12.97 dB SDR on the MDX23 set): the checkpoint's sha256 is
# published in audio-extract's build_artifact.py and in a UVR5-KTV-Maker model manager that
# fetches it from the Blane187/all_public_uvr_models mirror; the architecture is the MSST
# config configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml (values copied below).
_VIPERX_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
_VIPERX_CONFIG = {
    "audio": {"chunk_size": 352800, "sample_rate": 44100, "num_channels": 2},
    "model": {
        "dim": 512, "depth": 12, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
        "freq_transformer_depth": 1, "linear_transformer_depth": 0, "freqs_per_bands": list(_VIPERX_BANDS),
        "dim_head": 64, "heads": 8, "attn_dropout": 0.1, "ff_dropout": 0.1, "flash_attn": True,
        "dim_freqs_in": 1025, "stft_n_fft": 2048, "stft_hop_length": 441, "stft_win_length": 2048,
        "stft_normalized": False, "mask_estimator_depth": 2,
    },
    "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
    "inference": {"num_overlap": 2},
}
# Mel-Band RoFormer by Kimberley Jensen (vocals): HF LFS sha256 of MelBandRoformer.ckpt at
# revision ac9b0614…, published in several projects' manifests (913,106,900 bytes); the
# architecture is MSST's configs/KimberleyJensen/config_vocals_mel_band_roformer_kj.yaml.
_KJ_CONFIG = {
    "audio": {"chunk_size": 352800, "sample_rate": 44100, "num_channels": 2},
    "model": {
        "dim": 384, "depth": 6, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
        "freq_transformer_depth": 1, "num_bands": 60, "dim_head": 64, "heads": 8, "attn_dropout": 0.0,
        "ff_dropout": 0.0, "flash_attn": True, "dim_freqs_in": 1025, "sample_rate": 44100,
        "stft_n_fft": 2048, "stft_hop_length": 441, "stft_win_length": 2048, "stft_normalized": False,
        "mask_estimator_depth": 2,
    },
    "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
    "inference": {"num_overlap": 2},
}

KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            "kuielab_a", "mdxnet-onnx", ("drums", "bass", "other", "vocals"),
            tuple(_kuielab_file(s) for s in ("drums", "bass", "other", "vocals")),
            {"networks": _kuielab_settings(("drums", "bass", "other", "vocals"))},
            "KUIELab-MDX-Net leaderboard A, four ONNX networks (paper model C)",
        ),
        *[
            KnownModel(
                f"kuielab_a_{s}", "mdxnet-onnx", (s,), (_kuielab_file(s),), {"networks": _kuielab_settings((s,))},
                f"KUIELab-MDX-Net leaderboard A, the {s} network alone",
            )
            for s in ("drums", "bass", "other", "vocals")
        ],
        KnownModel(
            "bs_roformer_viperx_1297", "roformer", ("vocals",),
            (KnownFile(
                "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
                "5b84f37e8d444c8cb30c79d77f613a41c05868ff9c9ac6c7049c00aefae115aa",
                hub={"repo_id": "Blane187/all_public_uvr_models", "filename": "model_bs_roformer_ep_317_sdr_12.9755.ckpt"},
                manual=UVR_RELEASE + "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
                source="sha256 published in audio-extract build_artifact.py and UVR5-KTV-Maker's model manager",
            ),),
            {"config": _VIPERX_CONFIG, "model_type": "bs_roformer"},
            "BS-RoFormer vocals by viperx (MSST config viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml)",
        ),
        KnownModel(
            "mel_roformer_kj_vocals", "roformer", ("vocals",),
            (KnownFile(
                "MelBandRoformer.ckpt", "87201f4d31afb5bc79993230fc49446918425574db48c01c405e44f365c7559e",
                size=913106900,
                hub={"repo_id": "KimberleyJSN/melbandroformer", "filename": "MelBandRoformer.ckpt",
                     "revision": "ac9b0614ab3cd7f77219e18ba494dfd93956c348"},
                source="HF LFS sha256, published in several projects' model manifests",
            ),),
            {"config": _KJ_CONFIG, "model_type": "mel_band_roformer"},
            "Mel-Band RoFormer vocals by Kimberley Jensen (MSST config config_vocals_mel_band_roformer_kj.yaml)",
        ),
        KnownModel(
            "resunet143_vocals", "resunet", ("vocals",),
            (KnownFile(
                "resunet143_subbtandtime_vocals_8.7dB_500k_steps_v2.pth", None, size=414046363,
                manual="https://zenodo.org/record/5804160/files/resunet143_subbtandtime_vocals_8.7dB_500k_steps_v2.pth",
            ),),
            {},
            "bytesep ResUNet143 Subband-time vocals, 8.7 dB (paper model B); no sha256 is published",
        ),
    ]
}


def known_model(family: str, name: str) -> KnownModel | None:
    """The catalog entry of that family with that name, if any."""
    entry = KNOWN_MODELS.get(name)
    return entry if entry is not None and entry.family == family else None


def known_names(family: str) -> list[str]:
    return sorted(n for n, m in KNOWN_MODELS.items() if m.family == family)


def known_file_by_sha256(sha256: str) -> tuple[KnownModel, KnownFile] | None:
    """A catalogued file with this content (so a renamed copy still gets its settings)."""
    for model in KNOWN_MODELS.values():
        for f in model.files:
            if f.sha256 and f.sha256 == sha256.lower():
                return model, f
    return None


__all__ = ["KNOWN_MODELS", "KnownFile", "KnownModel", "known_file_by_sha256", "known_model", "known_names"]
