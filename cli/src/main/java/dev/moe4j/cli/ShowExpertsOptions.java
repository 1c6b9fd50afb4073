package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.config.ModelConfig;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.OptionalInt;

/** {@code --show-experts} and {@code --color}: each generated token coloured by the expert that took it. */
final class ShowExpertsOptions {
    enum Color { AUTO, ALWAYS, NEVER }

    @Option(names = "--show-experts", arity = "0..1", fallbackValue = "last", paramLabel = "LAYER",
            description = "colour each generated token by the first-ranked expert of MoE layer LAYER (0-based;"
                    + " default: the last MoE layer), with a legend at the end")
    String showExperts;

    @Option(names = "--color", paramLabel = "WHEN", defaultValue = "auto",
            description = "colours for --show-experts: auto (only when stdout is a terminal), always, never")
    String color;

    boolean enabled() {
        return showExperts != null;
    }

    /** The MoE layer to colour by, if --show-experts was given; checked against the model. */
    OptionalInt showLayer(ModelConfig config) {
        if (showExperts == null) {
            return OptionalInt.empty();
        }
        List<Integer> moe = new java.util.ArrayList<>();
        for (int i = 0; i < config.numLayers(); i++) {
            if (config.layers().get(i).moe()) {
                moe.add(i);
            }
        }
        if (moe.isEmpty()) {
            throw new BadInputException("--show-experts: this model has no MoE layer");
        }
        if (showExperts.equals("last")) {
            return OptionalInt.of(moe.getLast());
        }
        int layer;
        try {
            layer = Integer.parseInt(showExperts.trim());
        } catch (NumberFormatException e) {
            throw new BadInputException("--show-experts: expected a layer number, got '" + showExperts + "'");
        }
        if (!moe.contains(layer)) {
            throw new BadInputException("--show-experts: layer " + layer + " is not an MoE layer of this model (MoE"
                    + " layers: " + ranges(moe) + ")");
        }
        return OptionalInt.of(layer);
    }

    /** Whether to write colour codes, from --color and whether stdout is a terminal. */
    boolean colours(boolean terminal) {
        return switch (parseColor()) {
            case ALWAYS -> true;
            case NEVER -> false;
            case AUTO -> terminal;
        };
    }

    /** Checks the flags before anything is loaded. */
    void check() {
        parseColor();
    }

    private Color parseColor() {
        return switch (color.toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> Color.AUTO;
            case "always" -> Color.ALWAYS;
            case "never" -> Color.NEVER;
            default -> throw new BadInputException("--color: expected auto, always or never, got '" + color + "'");
        };
    }

    private static String ranges(List<Integer> layers) {
        int first = layers.getFirst();
        int last = layers.getLast();
        return last - first + 1 == layers.size() ? first + ".." + last : layers.toString();
    }
}
