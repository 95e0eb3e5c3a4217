"""CLIPDraw: Bézier strokes through clipgen's own differentiable rasteriser, also as SVG."""
