package dev.moe4j.train.vision;

import dev.moe4j.core.BadInputException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Zalando's Fashion-MNIST (Xiao et al. 2017; MIT licence): 60,000 training and 10,000 test images of 28 × 28
 * greyscale clothing in 10 classes, in the IDX files of the original distribution. Debian's
 * {@code dataset-fashion-mnist} package installs them, gzip-compressed, in {@link #SYSTEM_FOLDER}; a folder given by
 * the user may hold them compressed or not.
 */
public final class FashionMnist {
    /** Where the Debian package puts the files. */
    public static final Path SYSTEM_FOLDER = Path.of("/usr/share/datasets/fashion-mnist");
    /** The command that installs them. */
    public static final String INSTALL = "sudo apt-get install dataset-fashion-mnist";
    public static final List<String> CLASSES = List.of("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot");
    /** The training images' pixel mean and standard deviation (on the 0-1 scale). */
    static final float MEAN = 0.2860f, STD = 0.3530f;

    private FashionMnist() {
    }

    /** The two splits. */
    public record Splits(LabelledImages train, LabelledImages test) {
    }

    /** The data in {@code folder}, or in the system folder when {@code folder} is null. */
    public static Splits read(Path folder) {
        Path dir = folder == null ? SYSTEM_FOLDER : folder;
        if (!Files.isDirectory(dir)) {
            throw new BadInputException(folder == null
                    ? "Fashion-MNIST is not installed (" + SYSTEM_FOLDER + " is missing): install it with '" + INSTALL
                    + "' (Debian/Ubuntu), or give --data DIR with its four IDX files"
                    : dir + ": not a folder (expected the four Fashion-MNIST IDX files)");
        }
        return new Splits(
                LabelledImages.read("train", file(dir, "train-images-idx3-ubyte"), file(dir, "train-labels-idx1-ubyte"),
                        CLASSES, MEAN, STD),
                LabelledImages.read("test", file(dir, "t10k-images-idx3-ubyte"), file(dir, "t10k-labels-idx1-ubyte"),
                        CLASSES, MEAN, STD));
    }

    private static Path file(Path dir, String base) {
        for (String name : List.of(base, base + ".gz")) {
            if (Files.isRegularFile(dir.resolve(name))) {
                return dir.resolve(name);
            }
        }
        throw new BadInputException(dir + ": no " + base + " (or " + base + ".gz)");
    }
}
