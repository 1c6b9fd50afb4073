package dev.moe4j.train.config;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.core.testing.FuzzFiles;

import java.util.Map;

/**
 * Fuzzes {@code moe4j train --config FILE}: the same bytes as a YAML and as a JSON file are read, resolved over the
 * defaults and checked as a whole training configuration (the model, its MoE options and the run), or refused in
 * one line. Seeds: {@code TrainConfigFileFuzzTestInputs/} (the example configs and the options of every kind).
 */
class TrainConfigFileFuzzTest {
    private static final FuzzFiles FILES = new FuzzFiles("train-config");

    @FuzzTest
    @DictionaryEntries({"experts: ", "top-k: ", "router: ", "expert-choice", "soft", "dense", "capacity-factor: ",
            "noise: ", "learned", "gaussian", "balance-loss: ", "importance+load", "importance-of: ", "gate-order: ",
            "topk-then-softmax", "hidden: ", "heads: ", "kv-heads: ", "granularity: ", "shared-experts: ",
            "data: ", "steps: ", "time: ", "lr: ", "- ", "[", "]", "{", "}", ": ", "0", "-1", "1e309", ".nan",
            "null", "true", "&a", "*a", "!!"})
    void anyTrainConfigFileResolvesOrIsRefusedInOneLine(byte[] file) throws Exception {
        for (String name : new String[] {"run.yaml", "run.json"}) {
            var path = FILES.write(name, file);
            CleanRefusal.check(() -> TrainConfig.parse(TrainSettings.resolve(ConfigFile.read(path), Map.of())));
        }
    }
}
