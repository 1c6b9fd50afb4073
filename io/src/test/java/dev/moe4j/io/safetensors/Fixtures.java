package dev.moe4j.io.safetensors;

import java.net.URISyntaxException;
import java.nio.file.Path;

/** Locates the test checkpoints under src/test/resources/checkpoints. */
final class Fixtures {
    private Fixtures() {
    }

    static Path sharded() {
        return resource("checkpoints/mixtral-bf16-sharded");
    }

    static Path reference() {
        return sharded().resolve("reference.safetensors");
    }

    static Path resource(String name) {
        try {
            return Path.of(Fixtures.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}
