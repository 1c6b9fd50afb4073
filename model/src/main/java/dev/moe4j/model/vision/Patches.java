package dev.moe4j.model.vision;

import dev.moe4j.core.Tensor;

/** Cuts images into the rows of patches a ViT embeds. */
final class Patches {
    private Patches() {
    }

    /**
     * images [n, size² · channels] (row-major pixels, channels last) → [n · patches, patchSize² · channels]: image
     * i's patch (py, px) is row i · patches + py · grid + px, its values in row-major pixel order, channels last.
     */
    static Tensor of(Tensor images, VisionConfig c) {
        int n = images.rows(), size = c.imageSize(), p = c.patchSize(), ch = c.channels(), grid = c.grid();
        if (images.cols() != size * size * ch) {
            throw new IllegalArgumentException("images " + images + " are not [n, " + size * size * ch + "]");
        }
        float[] in = images.toFloatArray();
        float[] out = new float[n * c.patches() * c.patchValues()];
        int at = 0;
        for (int i = 0; i < n; i++) {
            int image = i * size * size * ch;
            for (int py = 0; py < grid; py++) {
                for (int px = 0; px < grid; px++) {
                    for (int y = 0; y < p; y++) {
                        int from = image + ((py * p + y) * size + px * p) * ch;
                        System.arraycopy(in, from, out, at, p * ch);
                        at += p * ch;
                    }
                }
            }
        }
        return Tensor.of(out, n * c.patches(), c.patchValues());
    }
}
