package dev.moe4j.cli.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.vision.VisionModelFolder;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code moe4j classify --model DIR IMAGE...}: the classes a vision model gives each image, most probable first, and
 * which expert each patch went to in every MoE layer.
 */
@Command(name = "classify",
        mixinStandardHelpOptions = true,
        usageHelpWidth = 110,
        description = {"Classifies images (PNG, or any format javax.imageio reads) with a model saved by moe4j "
                + "train-vision: prints the top classes with their probabilities and, per MoE layer, the grid of "
                + "experts its patches went to (. for a patch no expert took).",
                "",
                "An image is read as grey levels (the mean of its colour channels) and must have the model's size "
                        + "(28x28 for Fashion-MNIST, whose images are light clothing on a black background)."})
public final class ClassifyCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A folder saved by moe4j train-vision.")
    Path model;

    @Option(names = "--top", paramLabel = "N", defaultValue = "3", description = "Classes shown per image (default: 3).")
    int top;

    @Parameters(arity = "1..*", paramLabel = "IMAGE", description = "Image files.")
    List<Path> images;

    @Override
    public Integer call() {
        var loaded = VisionModelFolder.load(model);
        var config = loaded.model().config();
        var pre = loaded.preprocessing();
        if (config.channels() != 1) {
            throw new BadInputException(model + ": classify reads greyscale models; this one has " + config.channels()
                    + " channels");
        }
        int size = config.imageSize();
        float[] pixels = new float[images.size() * size * size];
        for (int i = 0; i < images.size(); i++) {
            int[] grey = grey(images.get(i), size);
            for (int p = 0; p < grey.length; p++) {
                pixels[i * size * size + p] = pre.normalise(grey[p]);
            }
        }
        var pass = loaded.model().forward(Graph.inference(), Tensor.of(pixels, images.size(), size * size));
        Tensor logits = pass.logits().value();
        PrintWriter w = spec.commandLine().getOut();
        int classes = config.classes(), grid = config.grid();
        for (int i = 0; i < images.size(); i++) {
            double[] p = softmax(logits, i, classes);
            var order = new ArrayList<Integer>();
            for (int c = 0; c < classes; c++) {
                order.add(c);
            }
            order.sort((a, b) -> Double.compare(p[b], p[a]));
            var best = new StringBuilder();
            for (int r = 0; r < Math.min(top, classes); r++) {
                int c = order.get(r);
                best.append(r == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.1f%%", pre.classes().get(c), 100 * p[c]));
            }
            w.println(images.get(i) + ": " + best);
            for (var m : pass.moe()) {
                int[] experts = expertsOfImage(m, i, config.patches());
                w.println("  MoE layer " + m.layer() + " experts by patch:");
                for (int y = 0; y < grid; y++) {
                    var row = new StringBuilder("    ");
                    for (int x = 0; x < grid; x++) {
                        int e = experts[y * grid + x];
                        row.append(e < 0 ? " ." : String.format(Locale.ROOT, "%2d", e));
                    }
                    w.println(row);
                }
            }
        }
        w.flush();
        return 0;
    }

    private static int[] expertsOfImage(dev.moe4j.model.vision.VisionTransformer.MoePass m, int image, int patches) {
        if (m.parts().size() > 1) {
            return dev.moe4j.train.vision.ImageEvaluation.firstExpert(m.parts().get(image), patches);
        }
        int[] all = dev.moe4j.train.vision.ImageEvaluation.firstExpert(m.parts().getFirst(), m.tokensPerPart());
        return java.util.Arrays.copyOfRange(all, image * patches, (image + 1) * patches);
    }

    private static double[] softmax(Tensor logits, int row, int n) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (int c = 0; c < n; c++) {
            max = Math.max(max, logits.get(row, c));
        }
        double[] p = new double[n];
        for (int c = 0; c < n; c++) {
            p[c] = Math.exp(logits.get(row, c) - max);
            sum += p[c];
        }
        for (int c = 0; c < n; c++) {
            p[c] /= sum;
        }
        return p;
    }

    /** The image's grey levels, row-major; refused unless it is a readable image of {@code size} × {@code size}. */
    static int[] grey(Path file, int size) {
        BufferedImage image;
        try {
            if (!Files.isRegularFile(file)) {
                throw new BadInputException(file + ": no such file");
            }
            image = ImageIO.read(file.toFile());
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read as an image (" + BadInputException.oneLine(e.getMessage()) + ")");
        }
        if (image == null) {
            throw new BadInputException(file + ": not an image format javax.imageio reads (PNG, JPEG, BMP, GIF)");
        }
        if (image.getWidth() != size || image.getHeight() != size) {
            throw new BadInputException(file + ": size: expected " + size + "x" + size + " pixels (the model's), got "
                    + image.getWidth() + "x" + image.getHeight());
        }
        int[] grey = new int[size * size];
        // An 8-bit grey image is read from its raster: getRGB would pass it through a colour conversion that
        // changes its levels. Any other (palette, colour, 16-bit) goes through getRGB's 8-bit sRGB.
        boolean byteGrey = image.getType() == BufferedImage.TYPE_BYTE_GRAY;
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                if (byteGrey) {
                    grey[y * size + x] = image.getRaster().getSample(x, y, 0);
                } else {
                    int rgb = image.getRGB(x, y);
                    grey[y * size + x] = Math.round((((rgb >> 16) & 0xFF) + ((rgb >> 8) & 0xFF) + (rgb & 0xFF)) / 3f);
                }
            }
        }
        return grey;
    }
}
