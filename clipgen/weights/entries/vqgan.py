"""Registry entries for the public taming-transformers VQGANs."""

from __future__ import annotations

from clipgen.weights.spec import FileSpec, WeightsEntry

_HEIBOX = "https://heibox.uni-heidelberg.de"
_SOMNAI = "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/debc22c8f285c7734980c464ff992d335dde6e9a"
_PXLPSHR = "https://huggingface.co/pxlpshr/pytti-models/resolve/main/vqgan"
_PIXRAY = "https://github.com/pixray/pixray/releases/download/v1.7.1"
_ELEIBER = "https://github.com/Eleiber/VQGAN-Mirrors/releases/download/0.0.1"
_IO_COMMUNITY = "http://mirror.io.community/blob/vqgan"

#: Local file names of a VQGAN entry; the generator opens these.
VQGAN_CONFIG = "model.yaml"
VQGAN_CHECKPOINT = "last.ckpt"

# Sources, sizes and digests: shared/weights-facts.md (public pages, 2026-11-21). Mirrors
# come first where they are hash-verified re-hosts on a CDN; the SHA-256 check makes every
# mirror equally trustworthy where a digest is known. Where none is published the first
# mirror that answers wins and its digest is recorded.
VQGAN_ENTRIES: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="imagenet-f16-16384",
        kind="vqgan",
        description="taming-transformers VQGAN, ImageNet, 16x downsampling, 16384 codes (default)",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/274fb24ed38341bfa753/?dl=1",
                    f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    f"{_SOMNAI}/imagenet/imagenet.yaml",
                    f"{_PXLPSHR}/imagenet.yaml",
                ),
                size=692,
                sha256="00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7",
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/867b05fc8c4841768640/?dl=1",
                    f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    f"{_SOMNAI}/imagenet/imagenet.ckpt",
                    f"{_PXLPSHR}/imagenet.ckpt",
                    "https://huggingface.co/datasets/erwann/face_editor_model_ckpt/resolve/"
                    "530c038d53be79cd1f5aa7758844f38cf5ac1ef7/imagenet.ckpt",
                ),
                size=980_092_370,
                sha256="845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
                retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_16384.ckpt",),
            ),
        ),
    ),
    WeightsEntry(
        name="imagenet-f16-1024",
        kind="vqgan",
        description="taming-transformers VQGAN, ImageNet, 16x downsampling, 1024 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/6ecf2af6c658432c8298/?dl=1",
                    f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/configs/model.yaml",
                ),
                approx_size=645,
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/140747ba53464f49b476/?dl=1",
                    f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/ckpts/last.ckpt",
                ),
                approx_size=958_000_000,
                retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_1024.ckpt",),
            ),
        ),
    ),
    WeightsEntry(
        name="gumbel-f8-8192",
        kind="vqgan",
        description="taming-transformers Gumbel VQGAN, OpenImages, 8x downsampling, 8192 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/b24d14998a8d4f19a34f/?dl=1",
                    f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    f"{_SOMNAI}/openimages/openimages.yaml",
                    f"{_PXLPSHR}/openimages.yaml",
                    "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/config.yaml",
                ),
                size=745,
                sha256="91110bab325067b37f85d1e75895a837d59c292bae4f3097f80c518714d5caff",
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/34a747d5765840b5a99d/?dl=1",
                    f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    f"{_SOMNAI}/openimages/openimages.ckpt",
                    f"{_PXLPSHR}/openimages.ckpt",
                    "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/model.ckpt",
                ),
                size=376_581_823,
                sha256="5cd6c74810ab97e00e942c25403f73afc081e8b19987b31ec0d9ff5b68e7ab14",
            ),
        ),
    ),
    WeightsEntry(
        name="wikiart-f16-16384",
        kind="vqgan",
        description="VQGAN fine-tuned on WikiArt, 16x downsampling, 16384 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_PIXRAY}/vqgan_wikiart_16384.yaml",
                    f"{_SOMNAI}/wikiart/wikiart.yaml",
                    f"{_PXLPSHR}/wikiart.yaml",
                    f"{_ELEIBER}/wikiart_16384.yaml",
                ),
                size=920,
                sha256="6e78241d2828ff35b8381839ce249c24a6c468ed429760d33a25e98e7f24499a",
                retired_urls=("http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.yaml",),
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_PIXRAY}/vqgan_wikiart_16384.ckpt",
                    f"{_SOMNAI}/wikiart/wikiart.ckpt",
                    f"{_PXLPSHR}/wikiart.ckpt",
                    f"{_ELEIBER}/wikiart_16384.ckpt",
                ),
                size=1_005_327_541,
                sha256="bd08bb46301f98be1712bb2be9f8868cea30b53137cd985d4d6e8da8b3e02c36",
                retired_urls=(
                    "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.ckpt",
                    f"{_IO_COMMUNITY}/wikiart_16384.ckpt",
                ),
            ),
        ),
    ),
    WeightsEntry(
        name="wikiart-f16-1024",
        kind="vqgan",
        description="VQGAN fine-tuned on WikiArt, 16x downsampling, 1024 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(f"{_PIXRAY}/vqgan_wikiart_1024.yaml", f"{_ELEIBER}/wikiart_1024.yaml"),
                retired_urls=(f"{_IO_COMMUNITY}/wikiart.yaml",),
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(f"{_PIXRAY}/vqgan_wikiart_1024.ckpt", f"{_ELEIBER}/wikiart_1024.ckpt"),
                approx_size=958_000_000,
                # mirror.io.community's "wikiart.ckpt" was this 1024-code model (taming issue #53).
                retired_urls=(f"{_IO_COMMUNITY}/wikiart.ckpt",),
            ),
        ),
    ),
)
