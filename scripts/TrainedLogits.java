import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;

/**
 * Writes what moe4j computes for a trained model folder, for scripts/check_trained_checkpoints.py to compare with
 * transformers: moe4j_logits.safetensors beside the weights, with input_ids [2, T] (I64, two text prompts tokenised
 * by the folder's tokenizer.json, cut to the same length) and logits [2, T, vocab] (F32).
 *
 * <p>Run it as a single-file program on the jar: {@code java --add-modules jdk.incubator.vector -cp
 * cli/target/moe4j.jar scripts/TrainedLogits.java runs/NAME}.
 */
public class TrainedLogits {
    public static void main(String[] args) {
        Path folder = Path.of(args[0]);
        Tokenizer tokenizer = Tokenizer.load(folder.resolve("tokenizer.json"));
        int[] a = tokenizer.encodeIds("ROMEO:\nBut soft, what light through yonder window breaks?\n", false);
        int[] b = tokenizer.encodeIds("KING HENRY:\nOnce more unto the breach, dear friends, once more;\n", false);
        int t = Math.min(a.length, b.length);
        int[] ids = new int[2 * t];
        System.arraycopy(a, 0, ids, 0, t);
        System.arraycopy(b, 0, ids, t, t);
        try (TransformerModel model = ModelLoader.load(folder)) {
            Tensor logits = model.transformer().forward(Graph.inference(), ids, 2, null).logits().value();
            var out = new LinkedHashMap<String, Tensor>();
            out.put("input_ids", Tensor.ofLongs(Arrays.stream(ids).asLongStream().toArray(), 2, t));
            out.put("logits", logits.reshape(2, t, model.config().vocabSize()).copy());
            SafetensorsWriter.write(folder.resolve("moe4j_logits.safetensors"), out);
            System.out.println(folder + ": " + model.config().family() + ", input_ids [2, " + t + "], logits written");
        }
    }
}
