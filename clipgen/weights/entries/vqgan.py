"""Registry entries for the public taming-transformers VQGANs."""

from __future__ import annotations

from clipgen.weights.spec import FileFacts, Mirror, WeightsEntry, build_entry

_HEIBOX = "https://heibox.uni-heidelberg.de"
_SOMNAI = "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/debc22c8f285c7734980c464ff992d335dde6e9a"
_PXLPSHR = "https://huggingface.co/pxlpshr/pytti-models/resolve/main/vqgan"
_PIXRAY = "https://github.com/pixray/pixray/releases/download/v1.7.1"
_ELEIBER = "https://github.com/Eleiber/VQGAN-Mirrors/releases/download/0.0.1"
_IO_COMMUNITY = "http://mirror.io.community/blob/vqgan"
_ERWANN = ("https://huggingface.co/datasets/erwann/face_editor_model_ckpt/resolve/"
           "530c038d53be79cd1f5aa7758844f38cf5ac1ef7")
_NEHC = "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main"
_NEGGLES = "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192"

#: Local file names of a VQGAN entry; the generator opens these.
VQGAN_CONFIG = "model.yaml"
VQGAN_CHECKPOINT = "last.ckpt"


# Each mirror below is one (config URL, checkpoint URL) pair.
def _heibox(config_id: str, checkpoint_id: str, folder: str) -> list[Mirror]:
    """The authors' share links: one per file, then the shared folder's download links."""
    folder_url = f"{_HEIBOX}/d/{folder}/files/?p=%2F"
    return [(f"{_HEIBOX}/f/{config_id}/?dl=1", f"{_HEIBOX}/f/{checkpoint_id}/?dl=1"),
            (f"{folder_url}configs%2Fmodel.yaml&dl=1", f"{folder_url}ckpts%2Flast.ckpt&dl=1")]


def _pytti(stem: str) -> list[Mirror]:
    """The two Hugging Face re-hosts of the pytti notebook's checkpoints."""
    return [(f"{_SOMNAI}/{stem}/{stem}.yaml", f"{_SOMNAI}/{stem}/{stem}.ckpt"),
            (f"{_PXLPSHR}/{stem}.yaml", f"{_PXLPSHR}/{stem}.ckpt")]


def _release(base: str, stem: str) -> Mirror:
    return f"{base}/{stem}.yaml", f"{base}/{stem}.ckpt"


def _vqgan(name: str, description: str, config: FileFacts, checkpoint: FileFacts, *mirrors: Mirror) -> WeightsEntry:
    return build_entry(name, "vqgan", description, {VQGAN_CONFIG: config, VQGAN_CHECKPOINT: checkpoint}, mirrors)


# Sources, sizes and digests: shared/weights-facts.md (public pages, 2026-11-21). Mirrors
# come first where they are hash-verified re-hosts on a CDN; the SHA-256 check makes every
# mirror equally trustworthy where a digest is known. Where none is published the first
# mirror that answers wins and its digest is recorded.
VQGAN_ENTRIES: tuple[WeightsEntry, ...] = (
    _vqgan("imagenet-f16-16384", "taming-transformers VQGAN, ImageNet, 16x downsampling, 16384 codes (default)",
           FileFacts(692, "00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7"),
           FileFacts(980_092_370, "845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
                     retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_16384.ckpt",)),
           *_heibox("274fb24ed38341bfa753", "867b05fc8c4841768640", "a7530b09fed84f80a887"),
           *_pytti("imagenet"), (None, f"{_ERWANN}/imagenet.ckpt")),
    _vqgan("imagenet-f16-1024", "taming-transformers VQGAN, ImageNet, 16x downsampling, 1024 codes",
           FileFacts(approx_size=645),
           FileFacts(approx_size=958_000_000, retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_1024.ckpt",)),
           *_heibox("6ecf2af6c658432c8298", "140747ba53464f49b476", "8088892a516d4e3baf92"),
           (f"{_NEHC}/configs/model.yaml", f"{_NEHC}/ckpts/last.ckpt")),
    _vqgan("gumbel-f8-8192", "taming-transformers Gumbel VQGAN, OpenImages, 8x downsampling, 8192 codes",
           FileFacts(745, "91110bab325067b37f85d1e75895a837d59c292bae4f3097f80c518714d5caff"),
           FileFacts(376_581_823, "5cd6c74810ab97e00e942c25403f73afc081e8b19987b31ec0d9ff5b68e7ab14"),
           *_heibox("b24d14998a8d4f19a34f", "34a747d5765840b5a99d", "2e5662443a6b4307b470"),
           *_pytti("openimages"), (f"{_NEGGLES}/config.yaml", f"{_NEGGLES}/model.ckpt")),
    _vqgan("wikiart-f16-16384", "VQGAN fine-tuned on WikiArt, 16x downsampling, 16384 codes",
           FileFacts(920, "6e78241d2828ff35b8381839ce249c24a6c468ed429760d33a25e98e7f24499a",
                     retired_urls=("http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.yaml",)),
           FileFacts(1_005_327_541, "bd08bb46301f98be1712bb2be9f8868cea30b53137cd985d4d6e8da8b3e02c36",
                     retired_urls=("http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.ckpt",
                                   f"{_IO_COMMUNITY}/wikiart_16384.ckpt")),
           _release(_PIXRAY, "vqgan_wikiart_16384"), *_pytti("wikiart"), _release(_ELEIBER, "wikiart_16384")),
    _vqgan("wikiart-f16-1024", "VQGAN fine-tuned on WikiArt, 16x downsampling, 1024 codes",
           FileFacts(retired_urls=(f"{_IO_COMMUNITY}/wikiart.yaml",)),
           # mirror.io.community's "wikiart.ckpt" was this 1024-code model (taming issue #53).
           FileFacts(approx_size=958_000_000, retired_urls=(f"{_IO_COMMUNITY}/wikiart.ckpt",)),
           _release(_PIXRAY, "vqgan_wikiart_1024"), _release(_ELEIBER, "wikiart_1024")),
)
