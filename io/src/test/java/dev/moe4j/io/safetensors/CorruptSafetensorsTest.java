package dev.moe4j.io.safetensors;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Broken files must each be refused with a one-line message naming the file and the problem. */
class CorruptSafetensorsTest {
    @TempDir
    Path dir;

    private static final String W16 = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    @Test
    void tooShortForTheLengthPrefix() throws IOException {
        assertRefused(write("empty", new byte[0]), "0 bytes is too short");
        assertRefused(write("five", new byte[5]), "5 bytes is too short");
    }

    @Test
    void hugeOrOverlongHeaderLength() throws IOException {
        assertRefused(write("huge", withLength(-1L, "{}", 0)), "header length 18446744073709551615 exceeds");
        assertRefused(write("big", withLength(200_000_000L, "{}", 0)), "exceeds the 100 MB limit");
        assertRefused(write("past", withLength(64, "{}", 0)), "header length 64 runs past the end of the file");
    }

    @Test
    void headerThatIsNotAJsonObjectOfTensors() throws IOException {
        assertRefused(file("{\"w\":", 0), "not valid JSON");
        assertRefused(file("[1, 2]", 0), "header is a JSON array, expected an object");
        assertRefused(file("{} trailing", 0), "not valid JSON");
        assertRefused(file("{\"a\":{},\"a\":{}}", 0), "not valid JSON");
        assertRefused(file("{\"w\": 3}", 0), "tensor 'w' must be an object");
        assertRefused(file("{\"__metadata__\":{\"k\":1}}", 0), "__metadata__ value 'k' must be a string");
        byte[] badUtf8 = withLength(4, "{\"\u00e9\"", 0);
        badUtf8[9] = (byte) 0xC3; // a lone lead byte: not UTF-8
        badUtf8[10] = (byte) 0x28;
        assertRefused(write("utf8", badUtf8), "not valid JSON");
    }

    @Test
    void aGarbageHeaderIsQuotedShortAndWithItsControlCharactersEscaped() throws IOException {
        var random = new Random(5);
        var garbage = new StringBuilder("x");
        for (int i = 0; i < 600; i++) {
            garbage.append((char) (i % 3 == 0 ? 7 : 0x4e00 + random.nextInt(0x5000))); // BEL and CJK characters
        }
        Path p = file(garbage.toString(), 0);
        var e = assertThrows(BadInputException.class, () -> SafetensorsReader.open(p).close());
        assertOneLineNaming(p, e);
        String problem = e.getMessage().substring(p.toString().length());
        assertTrue(problem.contains("not valid JSON: Unrecognized token 'x\\u0007"), problem);
        assertTrue(problem.length() < 300, problem); // the whole header was quoted: 900 bytes
        assertTrue(problem.chars().noneMatch(Character::isISOControl), problem);
    }

    @Test
    void malformedTensorEntries() throws IOException {
        assertRefused(file("{\"w\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16),
                "tensor 'w' has unknown dtype 'F128'; expected one of BOOL");
        assertRefused(file("{\"w\":{\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16),
                "unknown dtype 'f32'");
        assertRefused(file("{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16), "tensor 'w' has no dtype");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", 16), "has no shape array");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", 16),
                "shape [-2,-2] has a negative dimension");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", 16),
                "must hold integers");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,16]}}", 16),
                "has a dimension above");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 16),
                "data_offsets must be [begin, end]");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", 16),
                "must be non-negative");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16),
                "data_offsets [16, 0] end before they begin");
        assertRefused(file("{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1),
                "F4[3] is not a whole number of bytes");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],"
                + "\"data_offsets\":[0,16]}}", 16), "is too large to address");
    }

    @Test
    void offsetsThatDoNotTileTheData() throws IOException {
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12),
                "tensor 'w' data_offsets [0, 12] hold 12 bytes but F32[2,2] needs 16");
        assertRefused(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 8),
                "tensor 'w' data_offsets [0, 16] run past the end of the data (8 bytes)");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), "overlap");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24),
                "data bytes [8, 16) belong to no tensor");
        assertRefused(file(W16, 20), "data bytes [16, 20) at the end of the file belong to no tensor");
    }

    @Test
    void aTruncatedFileIsRefusedWhereverItIsCut() throws IOException {
        Path good = dir.resolve("good.safetensors");
        SafetensorsWriter.write(good, Map.of("a", Tensor.zeros(3, 5), "b", Tensor.zeros(7)), Map.of("k", "v"));
        byte[] whole = Files.readAllBytes(good);
        for (int cut = 0; cut < whole.length; cut++) {
            Path p = write("cut" + cut, Arrays.copyOf(whole, cut));
            var e = assertThrows(BadInputException.class, () -> SafetensorsReader.open(p).close(), "cut " + cut);
            assertOneLineNaming(p, e);
        }
    }

    @Test
    void randomlyDamagedHeadersAreEitherReadOrRefusedCleanly() throws IOException {
        Path good = dir.resolve("good.safetensors");
        SafetensorsWriter.write(good, Map.of("a", Tensor.zeros(3, 5), "b", Tensor.zeros(7)), Map.of("k", "v"));
        byte[] whole = Files.readAllBytes(good);
        var random = new Random(11);
        for (int trial = 0; trial < 300; trial++) {
            byte[] damaged = whole.clone();
            for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                int at = random.nextInt(8 + 80); // the length prefix and the start of the JSON
                damaged[at] = (byte) random.nextInt(256);
            }
            Path p = write("damaged" + trial, damaged);
            try (var reader = SafetensorsReader.open(p)) {
                reader.names().forEach(reader::tensor);
            } catch (BadInputException e) {
                assertOneLineNaming(p, e);
            }
        }
    }

    @Test
    void indexProblemsNameTheIndex() throws IOException {
        Path shard = dir.resolve("model-00001-of-00002.safetensors");
        SafetensorsWriter.write(shard, Map.of("a", Tensor.zeros(2)));
        Path index = dir.resolve(Checkpoint.INDEX_FILE);

        Files.writeString(index, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                + "\"b\":\"model-00002-of-00002.safetensors\"}}");
        assertRefusedAt(index, "shard 'model-00002-of-00002.safetensors' named in the index is missing");

        Files.writeString(index, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                + "\"c\":\"model-00001-of-00002.safetensors\"}}");
        assertRefusedAt(index, "tensor 'c' is mapped to 'model-00001-of-00002.safetensors', which does not hold it");

        Files.writeString(index, "{\"weight_map\":{\"a\":\"../elsewhere/model.safetensors\"}}");
        assertRefusedAt(index, "a shard must be a file name in the index's folder");

        Files.writeString(index, "{\"metadata\":{}}");
        assertRefusedAt(index, "expected an object with a 'weight_map'");

        Files.writeString(index, "{\"weight_map\":");
        assertRefusedAt(index, "not valid JSON");
    }

    @Test
    void aFolderWithoutWeightsSaysWhatIsMissing() {
        var e = assertThrows(BadInputException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("no model.safetensors or model.safetensors.index.json"), e.getMessage());
    }

    private void assertRefusedAt(Path index, String expected) {
        var e = assertThrows(BadInputException.class, () -> Checkpoint.open(dir).close());
        assertTrue(e.getMessage().startsWith(index.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    private void assertRefused(Path p, String expected) {
        var e = assertThrows(BadInputException.class, () -> SafetensorsReader.open(p).close());
        assertOneLineNaming(p, e);
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
        assertThrows(BadInputException.class, () -> Checkpoint.open(p).close());
    }

    private static void assertOneLineNaming(Path p, BadInputException e) {
        assertTrue(e.getMessage().startsWith(p + ": "), e.getMessage());
        assertFalse(e.getMessage().contains("\n") || e.getMessage().contains("\r"), e.getMessage());
    }

    private int counter;

    private Path file(String json, int dataBytes) throws IOException {
        return write("case" + counter++, withLength(json.getBytes(StandardCharsets.UTF_8).length, json, dataBytes));
    }

    private static byte[] withLength(long declared, String json, int dataBytes) {
        byte[] text = json.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + text.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(declared).put(text).array();
    }

    private Path write(String name, byte[] bytes) throws IOException {
        return Files.write(dir.resolve(name + ".safetensors"), bytes);
    }
}
