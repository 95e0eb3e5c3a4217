"""Generate an image from Python: the same call the CLI makes.

    python examples/python_api.py --clip ViT-B-32:openai --out outputs
"""

import argparse

import clipgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", default="ViT-B-32:openai", help="CLIP model spec or local folder")
    parser.add_argument("--out", default="outputs")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    seen = []
    result = clipgen.generate(
        "a watercolour lighthouse at dusk|blurry:-0.3",
        generator="fourier",
        clip=[args.clip],
        size=(128, 128),
        steps=args.steps,
        seed=42,
        out=args.out,
        fourier={"decay": 1.2},
        # Callbacks see every step; this one just records the step numbers.
        callbacks=[lambda state: seen.append(state.step)],
    )
    print(f"wrote {result.paths['image']} after {seen[-1]} steps; "
          f"CLIP similarity {result.initial_similarity:.3f} -> {result.final_similarity:.3f}")


if __name__ == "__main__":
    main()
