package dev.moe4j.io.safetensors;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Files written by the Python safetensors library 0.8.0 ({@code serialize} with every dtype it can write, and
 * {@code safetensors.torch.save_file} under torch 2.11): moe4j reads every tensor as written, and writing the same
 * tensors back gives the same bytes, so files moe4j writes are the files the reference library writes.
 */
class PythonWrittenFilesTest {
    @TempDir
    Path dir;

    /** The order the generating script gave the dtypes; tensor i holds bytes (j * 31 + i * 7 + 3) mod 256. */
    private static final List<DType> GENERATED = List.of(DType.BOOL, DType.F4, DType.U8, DType.I8, DType.F8_E5M2,
            DType.F8_E4M3, DType.F8_E8M0, DType.F8_E4M3FNUZ, DType.F8_E5M2FNUZ, DType.I16, DType.U16, DType.F16,
            DType.BF16, DType.I32, DType.U32, DType.F32, DType.C64, DType.F64, DType.I64, DType.U64);

    @Test
    void everyDtypeWrittenByThePythonLibraryReadsBackAsWritten() {
        try (var reader = SafetensorsReader.open(Fixtures.resource("python/python_all_dtypes.safetensors"))) {
            for (int i = 0; i < GENERATED.size(); i++) {
                DType dtype = GENERATED.get(i);
                Tensor t = reader.tensor("t_" + dtype.name().toLowerCase());
                assertEquals(dtype, t.dtype());
                assertArrayEquals(new int[] {3, 4}, t.shape());
                byte[] bytes = t.segment().toArray(ValueLayout.JAVA_BYTE);
                assertEquals(dtype.byteCount(12), bytes.length);
                for (int j = 0; j < bytes.length; j++) {
                    assertEquals((byte) ((j * 31 + i * 7 + 3) % 256), bytes[j], dtype + " byte " + j);
                }
            }
            assertEquals(2.5f, reader.tensor("scalar").getFloat(0));
            assertArrayEquals(new int[] {0, 7}, reader.tensor("empty").shape());
            Tensor last = reader.tensor("zz.last\u00e9");
            assertEquals(-1L, last.getLong(0));
            assertEquals(7L, last.getLong(1));
        }
    }

    @Test
    void rewritingFilesOfTheLatestPythonLibraryGivesTheSameBytes() throws IOException {
        for (String name : List.of("python_all_dtypes.safetensors", "torch_save_file.safetensors")) {
            Path original = Fixtures.resource("python/" + name);
            Path copy = dir.resolve(name);
            try (var reader = SafetensorsReader.open(original)) {
                var tensors = new LinkedHashMap<String, Tensor>();
                reader.names().forEach(n -> tensors.put(n, reader.tensor(n)));
                SafetensorsWriter.write(copy, tensors, reader.metadata());
                if (name.startsWith("torch")) {
                    assertArrayEquals(new float[] {0, 1, 2, 3}, reader.tensor("b").to(DType.F32).toFloatArray());
                }
            }
            assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(copy), name);
        }
    }
}
