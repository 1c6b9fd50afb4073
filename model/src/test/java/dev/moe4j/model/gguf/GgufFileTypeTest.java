package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgmlType;
import org.junit.jupiter.api.Test;

import static dev.moe4j.io.gguf.GgmlType.F16;
import static dev.moe4j.io.gguf.GgmlType.F32;
import static dev.moe4j.io.gguf.GgmlType.MXFP4;
import static dev.moe4j.io.gguf.GgmlType.Q4_K;
import static dev.moe4j.io.gguf.GgmlType.Q5_K;
import static dev.moe4j.io.gguf.GgmlType.Q6_K;
import static dev.moe4j.io.gguf.GgmlType.Q8_0;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GgufFileTypeTest {
    private static final GgufFileType.Model SIXTEEN_EXPERTS = new GgufFileType.Model(8, 16, false);
    private static final int[] MATRIX = {512, 256};
    private static final int[] EXPERTS = {16, 256, 512};

    private static GgmlType q4km(String name, int[] shape) {
        return GgufFileType.Q4_K_M.typeOf(name, shape, SIXTEEN_EXPERTS);
    }

    @Test
    void q4KMGivesAttnVAndFfnDownSixBitsInTheFirstAndLastEighthAndEveryThirdLayerBetween() {
        // llama.cpp's use_more_bits for 8 layers: 0 (first eighth), 7 (last eighth), 3 and 6 ((i - 1) % 3 == 2)
        for (int layer = 0; layer < 8; layer++) {
            GgmlType expected = layer == 0 || layer == 3 || layer == 6 || layer == 7 ? Q6_K : Q4_K;
            assertEquals(expected, q4km("blk." + layer + ".attn_v.weight", MATRIX), "attn_v " + layer);
            assertEquals(expected, q4km("blk." + layer + ".ffn_down_exps.weight", EXPERTS), "ffn_down " + layer);
            assertEquals(Q4_K, q4km("blk." + layer + ".attn_q.weight", MATRIX));
            assertEquals(Q4_K, q4km("blk." + layer + ".ffn_gate_exps.weight", EXPERTS));
            assertEquals(Q4_K, q4km("blk." + layer + ".attn_output.weight", MATRIX));
        }
        assertEquals(Q6_K, q4km("output.weight", MATRIX));
        assertEquals(Q4_K, q4km("token_embd.weight", MATRIX), "an embedding with its own output stays Q4_K");
        assertEquals(Q6_K, GgufFileType.Q4_K_M.typeOf("token_embd.weight", MATRIX, new GgufFileType.Model(8, 16, true)),
                "a tied embedding is the output");
        assertEquals(F32, q4km("blk.0.attn_norm.weight", new int[] {256}));
        assertEquals(F32, q4km("blk.0.ffn_gate_inp.weight", new int[] {16, 256}), "routers are not quantised");
    }

    @Test
    void eightExpertModelsKeepAttentionKeysAndValuesInQ8AndOutputProjectionsInQ5K() {
        var mixtral = new GgufFileType.Model(32, 8, false);
        assertEquals(Q8_0, GgufFileType.Q4_K_M.typeOf("blk.5.attn_v.weight", MATRIX, mixtral));
        assertEquals(Q8_0, GgufFileType.Q4_K_M.typeOf("blk.5.attn_k.weight", MATRIX, mixtral));
        assertEquals(Q5_K, GgufFileType.Q4_K_M.typeOf("blk.5.attn_output.weight", MATRIX, mixtral));
        assertEquals(Q4_K, GgufFileType.Q4_K_M.typeOf("blk.5.attn_q.weight", MATRIX, mixtral));
        assertEquals(Q8_0, GgufFileType.Q6_K.typeOf("blk.5.attn_k.weight", MATRIX, mixtral));
        assertEquals(Q6_K, GgufFileType.Q6_K.typeOf("blk.5.attn_output.weight", MATRIX, mixtral));
    }

    @Test
    void theOutputTakesQ6KUnlessTheFileIsQ8AndMxfp4FilesQuantiseOnlyTheExperts() {
        assertEquals(Q6_K, GgufFileType.Q4_0.typeOf("output.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(GgmlType.Q4_0, GgufFileType.Q4_0.typeOf("blk.0.attn_v.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(Q8_0, GgufFileType.Q8_0.typeOf("output.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(MXFP4, GgufFileType.MXFP4_MOE.typeOf("blk.1.ffn_up_exps.weight", EXPERTS, SIXTEEN_EXPERTS));
        assertEquals(Q8_0, GgufFileType.MXFP4_MOE.typeOf("blk.1.attn_q.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(Q8_0, GgufFileType.MXFP4_MOE.typeOf("output.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(F16, GgufFileType.F16.typeOf("blk.1.attn_q.weight", MATRIX, SIXTEEN_EXPERTS));
        assertEquals(F32, GgufFileType.F16.typeOf("output_norm.weight", new int[] {256}, SIXTEEN_EXPERTS));
    }

    @Test
    void rowsThatAreNotWholeBlocksFallBackToQ8ThenF16() {
        assertEquals(Q8_0, q4km("blk.1.attn_q.weight", new int[] {64, 96}), "96 is three blocks of 32, not of 256");
        assertEquals(Q8_0, q4km("output.weight", new int[] {64, 96}));
        assertEquals(F16, q4km("blk.1.attn_q.weight", new int[] {64, 40}));
        assertEquals(F16, GgufFileType.Q8_0.typeOf("blk.1.attn_q.weight", new int[] {64, 40}, SIXTEEN_EXPERTS));
    }

    @Test
    void fileTypesAreNamedAsLlamaCppNamesThem() {
        assertEquals(GgufFileType.Q4_K_M, GgufFileType.parse("Q4_K_M", "--type"));
        assertEquals(15, GgufFileType.Q4_K_M.id());
        var e = assertThrows(BadInputException.class, () -> GgufFileType.parse("q3_k", "--type"));
        assertEquals("--type: expected one of f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, mxfp4_moe, got 'q3_k'",
                e.getMessage());
        var layerless = assertThrows(BadInputException.class, () -> q4km("attn_v.weight", MATRIX));
        assertTrue(layerless.getMessage().contains("expected a name 'blk.N.'"), layerless.getMessage());
    }
}
