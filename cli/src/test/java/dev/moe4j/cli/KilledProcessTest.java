package dev.moe4j.cli;

import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicDirectory;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code kill -9} of real moe4j processes (SIGKILL: no shutdown hook, no finally block runs). A training killed
 * while it saves leaves its run folder as a complete checkpoint, the previous or the new one, that loads and resumes;
 * a server killed in the middle of a stream serves again when restarted on the same port.
 */
class KilledProcessTest {
    private static final Duration START = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    /** The test JVM's java, class path and the flags moe4j needs: what ./moe4j runs, minus the jar. */
    private Process start(String name, String... args) throws IOException {
        var command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectOutput(dir.resolve(name + ".out").toFile())
                .redirectError(dir.resolve(name + ".err").toFile()).start();
    }

    private static void kill(Process p) throws InterruptedException {
        p.destroyForcibly(); // SIGKILL on Linux
        assertTrue(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS), "the process died");
    }

    /** Polls until {@code done} or the process ends or the time is up; true when done. */
    private static boolean await(Process p, BooleanSupplier done) throws InterruptedException {
        long end = System.nanoTime() + START.toNanos();
        while (System.nanoTime() < end) {
            if (done.getAsBoolean()) {
                return true;
            }
            if (!p.isAlive()) {
                return done.getAsBoolean();
            }
            Thread.sleep(2);
        }
        return false;
    }

    private String log(String name) throws IOException {
        return Files.readString(dir.resolve(name + ".err")) + Files.readString(dir.resolve(name + ".out"));
    }

    @Test
    void aTrainingKilledWhileItSavesLeavesACompleteCheckpointThatLoadsAndResumes() throws Exception {
        Path data = dir.resolve("text.txt"), run = dir.resolve("run");
        String[] words = {"the", "king", "shall", "speak", "night", "love", "my", "lord", "good", "and", "thee"};
        var random = new SplittableRandom(5);
        var text = new StringBuilder();
        for (int line = 0; line < 400; line++) {
            for (int w = 0; w < 7; w++) {
                text.append(w == 0 ? "" : " ").append(words[random.nextInt(words.length)]);
            }
            text.append(".\n");
        }
        Files.writeString(data, text);
        // A checkpoint after every step; each process is killed a few milliseconds after a save has begun (its
        // temporary folder appeared), the delays moving the kill through the save's stages: writing the files,
        // the two renames of the swap, deleting the previous version.
        List<String> train = List.of("train", "--tiny", "--data", data.toString(), "--cache",
                dir.resolve("cache").toString(), "--out", run.toString(), "--steps", "100000", "--save-every", "1",
                "--eval-every", "0", "--samples", "0", "--threads", "1", "--device", "cpu");
        long step = 0;
        int interrupted = 0;
        var seen = new java.util.HashSet<String>();
        int[] delaysMillis = {0, 3, 10};
        for (int i = 0; i < delaysMillis.length; i++) {
            var args = new ArrayList<>(train);
            if (i > 0) {
                args.add("--resume");
            }
            String name = "train" + i;
            Process p = start(name, args.toArray(String[]::new));
            long before = step;
            assertTrue(await(p, () -> savedStep(run) > before), "a checkpoint after step " + before + " within "
                    + START + ": " + log(name));
            assertTrue(await(p, () -> !saves(seen).isEmpty()), "a save began: " + log(name));
            Thread.sleep(delaysMillis[i]);
            kill(p);
            var inProgress = saves(seen);
            if (!inProgress.isEmpty() || Files.exists(dir.resolve("run.previous"))) {
                interrupted++;
            }
            seen.addAll(inProgress);

            AtomicDirectory.recover(run); // what the next train does first, for a kill between the swap's renames
            RunCheckpoint.State state = RunCheckpoint.state(run);
            assertTrue(state.step() >= before + 1, "step " + state.step() + " after " + before);
            step = state.step();
            assertEquals("true", RunCheckpoint.settings(run).get("tiny"));
            try (var reader = SafetensorsReader.open(run.resolve(RunCheckpoint.OPTIMIZER))) {
                for (String tensor : reader.names()) {
                    reader.tensor(tensor).copy();
                }
            }
            try (var model = ModelLoader.load(run)) {
                Tensor logits = model.forward(model.newState(4), new int[] {1, 2, 3}, true, null);
                for (float v : logits.toFloatArray()) {
                    assertTrue(Float.isFinite(v), "logits of the checkpoint after kill " + i);
                }
            }
        }
        assertTrue(interrupted > 0, "at least one kill interrupted a save (left its temporary folder or the "
                + "previous version)");
    }

    /** The temporary folders of saves in progress (or killed) that are not in {@code seen}. */
    private List<String> saves(java.util.Set<String> seen) {
        try (var files = Files.list(dir)) {
            return files.map(f -> f.getFileName().toString())
                    .filter(f -> f.startsWith(".run.") && f.endsWith(".tmp") && !seen.contains(f)).toList();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The step of the run's saved trainer state, or 0 while there is none (or it is being swapped). */
    private static long savedStep(Path run) {
        try {
            return Files.isRegularFile(run.resolve(RunCheckpoint.STATE)) ? RunCheckpoint.state(run).step() : 0;
        } catch (RuntimeException swappedMeanwhile) {
            return 0;
        }
    }

    @Test
    void aServerKilledMidStreamServesAgainOnTheSamePort() throws Exception {
        Path model = Fixtures.model("mixtral", dir);
        int port;
        try (var socket = new ServerSocket(0)) {
            port = socket.getLocalPort();
        }
        URI base = URI.create("http://127.0.0.1:" + port + "/");
        String[] serve = {"serve", "--model", model.toString(), "--port", Integer.toString(port), "--device", "cpu"};
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

        Process first = start("serve0", serve);
        assertTrue(await(first, () -> listening("serve0")), "serve started");
        // No max_tokens: the server generates to the end of the fixture's 128 positions (a budget beyond them is
        // refused), so the stream is still going when it is killed.
        var request = HttpRequest.newBuilder(base.resolve("v1/completions")).timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(
                        "{\"prompt\": \"Once\", \"stream\": true, \"temperature\": 0}")).build();
        HttpResponse<InputStream> stream = client.send(request, HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, stream.statusCode());
        var reader = new BufferedReader(new InputStreamReader(stream.body(), StandardCharsets.UTF_8));
        int chunks = 0;
        for (String line; chunks < 3 && (line = reader.readLine()) != null; ) {
            if (line.startsWith("data: {")) {
                chunks++;
            }
        }
        assertEquals(3, chunks, "the stream had begun");
        kill(first);
        try {
            while (reader.readLine() != null) {
                // the rest of what was in flight; the stream ends with the process
            }
        } catch (IOException ended) {
            // a reset connection is as good an end as any
        }

        Process second = start("serve1", serve);
        try {
            assertTrue(await(second, () -> listening("serve1")), "serve started again on port " + port + ": "
                    + log("serve1"));
            var health = client.send(HttpRequest.newBuilder(base.resolve("health")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, health.statusCode(), health.body());
            var reply = client.send(HttpRequest.newBuilder(base.resolve("v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"Once\", \"max_tokens\": 4}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, reply.statusCode(), reply.body());
            assertTrue(reply.body().contains("\"finish_reason\""), reply.body());
        } finally {
            kill(second);
        }
    }

    private boolean listening(String name) {
        try {
            return Files.readString(dir.resolve(name + ".err")).contains(" on http://");
        } catch (IOException e) {
            fail(e);
            return false;
        }
    }
}
