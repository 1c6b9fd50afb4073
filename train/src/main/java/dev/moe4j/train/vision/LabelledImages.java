package dev.moe4j.train.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.idx.IdxFile;
import dev.moe4j.model.vision.VisionModelFolder;

import java.nio.file.Path;
import java.util.List;

/**
 * Square greyscale images with their class labels, as an IDX pair holds them (images [n, size, size], labels [n]).
 * Pixels stay bytes until a batch asks for them; {@link #batch} normalises them by the data set's mean and spread.
 *
 * @param classes the class names, indexed by label
 */
public record LabelledImages(String name, int size, byte[] pixels, byte[] labels, List<String> classes, float mean,
                             float std) {
    public LabelledImages {
        classes = List.copyOf(classes);
    }

    /** Reads and cross-checks an images file and a labels file; every label must name one of {@code classes}. */
    public static LabelledImages read(String name, Path imagesFile, Path labelsFile, List<String> classes, float mean,
                                      float std) {
        IdxFile images = IdxFile.read(imagesFile), labels = IdxFile.read(labelsFile);
        int[] d = images.dims();
        if (d.length != 3 || d[1] != d[2]) {
            throw new BadInputException(imagesFile + ": dimensions: expected [images, side, side], got "
                    + java.util.Arrays.toString(d));
        }
        if (labels.dims().length != 1) {
            throw new BadInputException(labelsFile + ": dimensions: expected [labels], got "
                    + java.util.Arrays.toString(labels.dims()));
        }
        if (labels.count() != images.count()) {
            throw new BadInputException(labelsFile + ": count: " + labels.count() + " labels for the "
                    + images.count() + " images of " + imagesFile.getFileName());
        }
        for (int i = 0; i < labels.count(); i++) {
            if (labels.unsigned(i) >= classes.size()) {
                throw new BadInputException(labelsFile + ": label " + i + ": expected 0 to " + (classes.size() - 1)
                        + ", got " + labels.unsigned(i));
            }
        }
        return new LabelledImages(name, d[1], images.values(), labels.values(), classes, mean, std);
    }

    public int count() {
        return labels.length;
    }

    public int label(int i) {
        return labels[i] & 0xFF;
    }

    /** Pixel p (row-major) of image i, 0 to 255. */
    public int pixel(int i, int p) {
        return pixels[i * size * size + p] & 0xFF;
    }

    /** The first {@code n} images (a quick run's subset). */
    public LabelledImages first(int n) {
        int m = Math.min(n, count());
        return new LabelledImages(name, size, java.util.Arrays.copyOf(pixels, m * size * size),
                java.util.Arrays.copyOf(labels, m), classes, mean, std);
    }

    /** How a model trained on these images reads pixels. */
    public VisionModelFolder.Preprocessing preprocessing() {
        return new VisionModelFolder.Preprocessing(classes, mean, std);
    }

    /** Images {@code indices} as [indices.length, size²], each pixel (p/255 − mean)/std. */
    public Tensor batch(int[] indices) {
        int area = size * size;
        float[] out = new float[indices.length * area];
        for (int b = 0; b < indices.length; b++) {
            for (int p = 0; p < area; p++) {
                out[b * area + p] = (pixel(indices[b], p) / 255f - mean) / std;
            }
        }
        return Tensor.of(out, indices.length, area);
    }

    /** The labels of {@code indices}. */
    public int[] labels(int[] indices) {
        int[] out = new int[indices.length];
        for (int b = 0; b < indices.length; b++) {
            out[b] = label(indices[b]);
        }
        return out;
    }
}
