package dev.moe4j.model;

import java.net.URISyntaxException;
import java.nio.file.Path;

/** Paths of the test resources (see src/test/resources/README.md). */
public final class Resources {
    private Resources() {
    }

    public static Path fixture(String name) {
        return path("fixtures/" + name);
    }

    public static Path published(String name) {
        return path("published/" + name + ".json");
    }

    public static Path path(String name) {
        try {
            return Path.of(Resources.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource " + name, e);
        }
    }
}
