package dev.moe4j.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.expert.ExpertLora;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A LoRA adapter in PEFT's format: a folder with {@value #CONFIG} (peft_type LORA, r, lora_alpha, target_modules,
 * target_parameters, ...) and {@value #WEIGHTS}, whose tensors are named after the modules of transformers 5's model
 * they adapt ({@code base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight}; see {@link AdapterSite} and,
 * for fused experts, {@link PeftLayout}). What {@code peft.PeftModel.from_pretrained} loads, and what moe4j reads.
 *
 * <p>Read, it is the source of a model's adapters ({@link AdaptedWeights#of}); each matrix is checked against the
 * place the model has for it, so a mismatch is a one-line error naming the file and the tensor.
 */
public final class PeftAdapter implements AdapterSource {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    private static final String PREFIX = "base_model.model.";
    /** The PEFT version whose layout moe4j writes (adapter_config.json's peft_version). */
    static final String WRITTEN_AS = "0.21.0";
    private static final Pattern KEY = Pattern.compile(Pattern.quote(PREFIX) + "(.+)\\.lora_([AB])\\.weight");

    /** One adapter as moe4j holds it: a [r, in] and b [out, r], or stacked over experts [E, r, in] and [E, out, r]. */
    private record Entry(Tensor a, Tensor b, String key, float scale) {
    }

    /**
     * r and lora_alpha with PEFT's per-module overrides: the first key of rank_pattern (alpha_pattern) that matches
     * the end of a module's (or wrapped parameter's) path, as {@code (.*\.)?(key)$}, gives its rank (alpha).
     */
    private record Scaling(int rank, double alpha, boolean rsLora, Map<String, Integer> ranks, Map<String, Double> alphas) {
        int rankOf(String path) {
            return ranks.entrySet().stream().filter(e -> matches(e.getKey(), path)).map(Map.Entry::getValue)
                    .findFirst().orElse(rank);
        }

        float scaleOf(String path) {
            double a = alphas.entrySet().stream().filter(e -> matches(e.getKey(), path)).map(Map.Entry::getValue)
                    .findFirst().orElse(alpha);
            int r = rankOf(path);
            return (float) (rsLora ? a / Math.sqrt(r) : a / r);
        }

        private static boolean matches(String pattern, String path) {
            try {
                return Pattern.compile("(.*\\.)?(" + pattern + ")$").matcher(path).matches();
            } catch (java.util.regex.PatternSyntaxException e) {
                return false;
            }
        }
    }

    private final Path folder;
    private final int rank;
    private final double alpha;
    private final boolean rsLora;
    private final String baseModel;
    private final Map<String, Entry> entries;
    private final Set<String> used = new HashSet<>();

    private PeftAdapter(Path folder, int rank, double alpha, boolean rsLora, String baseModel,
                        Map<String, Entry> entries) {
        this.folder = folder;
        this.rank = rank;
        this.alpha = alpha;
        this.rsLora = rsLora;
        this.baseModel = baseModel;
        this.entries = entries;
    }

    /** True when {@code folder} holds a PEFT adapter (its config file). */
    public static boolean isAdapter(Path folder) {
        return Files.isRegularFile(folder.resolve(CONFIG));
    }

    public int rank() {
        return rank;
    }

    public double alpha() {
        return alpha;
    }

    public boolean rsLora() {
        return rsLora;
    }


    /** base_model_name_or_path, or empty. */
    public String baseModel() {
        return baseModel;
    }

    /** The adapters' moe4j names ({@code layers.0.attention.q_proj}, ...), in the file's order. */
    public Set<String> names() {
        return entries.keySet();
    }

    /**
     * The update scale · b · a of the adapter {@code name}: [out, in], or [E, out, in] for per-expert adapters (what
     * merging adds to the weights).
     */
    public Tensor delta(String name) {
        Entry e = entries.get(name);
        if (e.a().rank() == 2) {
            return product(e.b(), e.a(), e.scale());
        }
        int experts = e.a().dim(0);
        Tensor out = Tensor.zeros(experts, e.b().dim(1), e.a().dim(2));
        for (int x = 0; x < experts; x++) {
            out.select(x).copyFrom(product(e.b().select(x), e.a().select(x), e.scale()));
        }
        return out;
    }

    private static Tensor product(Tensor b, Tensor a, float scale) {
        int out = b.dim(0), r = b.dim(1), in = a.dim(1);
        Tensor y = Tensor.zeros(out, in);
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int k = 0; k < r; k++) {
                    s += (double) b.get(o, k) * a.get(k, i);
                }
                y.set((float) (scale * s), o, i);
            }
        }
        return y;
    }

    // ---- reading ----

    /** Reads the adapter in {@code folder} for a model of {@code config}, checking every field and tensor. */
    public static PeftAdapter read(Path folder, ModelConfig config) {
        if (!Files.isDirectory(folder)) {
            throw new BadInputException(folder + ": not an adapter folder (expected " + CONFIG + " and " + WEIGHTS + ")");
        }
        Path configFile = folder.resolve(CONFIG), weights = folder.resolve(WEIGHTS);
        if (!Files.isRegularFile(configFile)) {
            throw new BadInputException(folder + ": no " + CONFIG + " (a PEFT adapter folder holds " + CONFIG + " and "
                    + WEIGHTS + ")");
        }
        JsonNode c = Json.read(configFile);
        if (!c.isObject()) {
            throw new BadInputException(configFile + ": expected a JSON object");
        }
        String type = c.path("peft_type").asText("");
        if (!type.equals("LORA")) {
            throw new BadInputException(configFile + ": peft_type is '" + type + "'; moe4j reads LORA adapters");
        }
        if (!c.path("r").canConvertToInt() || c.path("r").asInt() <= 0) {
            throw new BadInputException(configFile + ": r must be a positive integer, got " + c.path("r"));
        }
        if (!c.path("lora_alpha").isNumber() || !(c.path("lora_alpha").asDouble() > 0)) {
            throw new BadInputException(configFile + ": lora_alpha must be a positive number, got " + c.path("lora_alpha"));
        }
        refuse(configFile, c, "use_dora", true, "DoRA adapters (use_dora) are not read yet");
        refuse(configFile, c, "lora_bias", true, "adapters with a bias on lora_B (lora_bias) are not read yet");
        refuse(configFile, c, "fan_in_fan_out", true, "fan_in_fan_out adapters (Conv1D layers) do not fit these models");
        if (!c.path("bias").asText("none").equals("none")) {
            throw new BadInputException(configFile + ": bias is '" + c.path("bias").asText() + "'; moe4j reads adapters "
                    + "with bias \"none\" (trained biases are not part of LoRA's matrices)");
        }
        var ranks = new LinkedHashMap<String, Integer>();
        var alphas = new LinkedHashMap<String, Double>();
        for (String field : List.of("rank_pattern", "alpha_pattern")) {
            JsonNode pattern = c.path(field);
            if (!pattern.isMissingNode() && !pattern.isNull() && !pattern.isObject()) {
                throw new BadInputException(configFile + ": " + field + " must be an object of pattern: number");
            }
            for (var e : pattern.isObject() ? pattern.properties() : java.util.Set.<Map.Entry<String, JsonNode>>of()) {
                if (!e.getValue().isNumber() || !(e.getValue().asDouble() > 0)) {
                    throw new BadInputException(configFile + ": " + field + " '" + e.getKey() + "' must be a positive "
                            + "number, got " + e.getValue());
                }
                if (field.equals("rank_pattern")) {
                    ranks.put(e.getKey(), e.getValue().asInt());
                } else {
                    alphas.put(e.getKey(), e.getValue().asDouble());
                }
            }
        }
        JsonNode save = c.path("modules_to_save");
        if (save.isArray() && !save.isEmpty()) {
            throw new BadInputException(configFile + ": modules_to_save " + save + " holds fully trained modules beside "
                    + "the adapters; moe4j reads LoRA matrices only");
        }
        int rank = c.path("r").asInt();
        double alpha = c.path("lora_alpha").asDouble();
        boolean rsLora = c.path("use_rslora").asBoolean(false);
        if (!Files.isRegularFile(weights)) {
            throw new BadInputException(folder + ": no " + WEIGHTS + (Files.exists(folder.resolve("adapter_model.bin"))
                    ? " (adapter_model.bin, PyTorch's pickle format, is not read: save with safe_serialization)" : ""));
        }
        String version = c.path("peft_version").asText("");
        // PEFT 0.19.1 turned fused [E, out, in] expert parameters' adapters round (PeftLayout); older files say so
        // by an older peft_version, or by having none.
        Boolean current = version.isEmpty() ? null : atLeast(version, 0, 19, 1);
        var scaling = new Scaling(rank, alpha, rsLora, ranks, alphas);
        var entries = readWeights(weights, config, scaling, current);
        return new PeftAdapter(folder, rank, alpha, rsLora, c.path("base_model_name_or_path").asText(""), entries);
    }

    /** Whether a version string major.minor.patch[...] is at least the given one. */
    static boolean atLeast(String version, int... least) {
        String[] parts = version.split("[.+-]");
        for (int i = 0; i < least.length; i++) {
            int v;
            try {
                v = i < parts.length ? Integer.parseInt(parts[i].replaceAll("\\D.*", "")) : 0;
            } catch (NumberFormatException e) {
                v = 0;
            }
            if (v != least[i]) {
                return v > least[i];
            }
        }
        return true;
    }

    private static void refuse(Path file, JsonNode c, String field, boolean value, String why) {
        if (c.path(field).isBoolean() && c.path(field).asBoolean() == value) {
            throw new BadInputException(file + ": " + field + " is " + value + ": " + why);
        }
    }

    private static Map<String, Entry> readWeights(Path file, ModelConfig config, Scaling scaling, Boolean current) {
        var byModule = new HashMap<String, List<AdapterSite>>();
        for (AdapterSite s : AdapterSite.of(config)) {
            byModule.computeIfAbsent(s.module(), k -> new ArrayList<>()).add(s);
        }
        var pairs = new LinkedHashMap<String, Tensor[]>();
        try (var reader = SafetensorsReader.open(file)) {
            for (String key : reader.names()) {
                Matcher m = KEY.matcher(key);
                if (!m.matches()) {
                    throw new BadInputException(file + ": '" + key + "' is not a LoRA matrix (PEFT names them "
                            + PREFIX + "<module>.lora_A.weight and .lora_B.weight)");
                }
                Tensor t = reader.tensor(key);
                if (t.rank() != 2 || !t.dtype().isKernelFloat()) {
                    throw new BadInputException(file + ": '" + key + "' is " + t + "; LoRA matrices are 2-D F32, BF16 or F16");
                }
                pairs.computeIfAbsent(m.group(1), k -> new Tensor[2])[m.group(2).equals("A") ? 0 : 1] = t.to(DType.F32);
            }
        }
        if (pairs.isEmpty()) {
            throw new BadInputException(file + ": holds no LoRA matrices");
        }
        var out = new LinkedHashMap<String, Entry>();
        var perExpert = new LinkedHashMap<String, Tensor[][]>();
        var scales = new HashMap<String, Float>();
        for (var p : pairs.entrySet()) {
            String module = p.getKey(), key = PREFIX + module + ".lora_A.weight";
            Tensor a = p.getValue()[0], b = p.getValue()[1];
            if (a == null || b == null) {
                throw new BadInputException(file + ": '" + PREFIX + module + ".lora_" + (a == null ? "B" : "A")
                        + ".weight' has no lora_" + (a == null ? "A" : "B") + " beside it");
            }
            if (b.dim(1) != a.dim(0)) {
                throw new BadInputException(file + ": lora_A " + shape(a) + " and lora_B " + shape(b) + " of '" + module
                        + "' do not chain (lora_B's columns must equal lora_A's rows)");
            }
            List<AdapterSite> sites = byModule.get(module.replace(".base_layer", ""));
            if (sites == null) {
                throw new BadInputException(file + ": '" + key + "' adapts '" + module.replace(".base_layer", "")
                        + "', which a " + config.family() + " model of this config does not have");
            }
            AdapterSite site = sites.getFirst();
            switch (site.kind()) {
                case LINEAR, ROUTER -> {
                    String path = site.kind() == AdapterSite.Kind.ROUTER ? site.module() + "." + site.parameter()
                            : site.module();
                    requireRank(file, key, a.dim(0), scaling.rankOf(path));
                    put(out, file, site.name(), new Entry(a, b, key, scaling.scaleOf(path)));
                }
                case EXPERTS -> {
                    Fused chosen = fusedParameter(file, key, sites, a, b, config, current);
                    int experts = expertCount(chosen.site(), config);
                    String path = chosen.site().module() + "." + chosen.site().parameter();
                    requireRank(file, key, a.dim(0) / experts, scaling.rankOf(path));
                    Tensor[] ab = PeftLayout.fromPeft(a, b, experts, chosen.aIsInput());
                    put(out, file, chosen.site().name(), new Entry(ab[0], ab[1], key, scaling.scaleOf(path)));
                }
                case EXPERT -> {
                    requireRank(file, key, a.dim(0), scaling.rankOf(site.module()));
                    scales.put(site.name(), scaling.scaleOf(site.module()));
                    int experts = config.moe().orElseThrow().experts();
                    Tensor[][] slots = perExpert.computeIfAbsent(site.name(), k -> new Tensor[experts][]);
                    slots[site.expert()] = new Tensor[] {a, b};
                }
            }
        }
        perExpert.forEach((name, slots) -> {
            Tensor a0 = null;
            for (int e = 0; e < slots.length; e++) {
                if (slots[e] == null) {
                    throw new BadInputException(file + ": adapters on " + name + " of some experts but not of expert " + e);
                }
                if (a0 == null) {
                    a0 = slots[e][0];
                }
                if (!java.util.Arrays.equals(slots[e][0].shape(), a0.shape())) {
                    throw new BadInputException(file + ": the experts' adapters on " + name + " differ in shape");
                }
            }
            int r = a0.dim(0), in = a0.dim(1), outRows = slots[0][1].dim(0);
            Tensor a = Tensor.zeros(slots.length, r, in), b = Tensor.zeros(slots.length, outRows, r);
            for (int e = 0; e < slots.length; e++) {
                a.select(e).copyFrom(slots[e][0]);
                b.select(e).copyFrom(slots[e][1]);
            }
            put(out, file, name, new Entry(a, b, name, scales.get(name)));
        });
        return out;
    }

    /** A fused expert parameter and whether its adapter's lora_A spans the input. */
    private record Fused(AdapterSite site, boolean aIsInput) {
    }

    /**
     * Which of a module's fused expert parameters a pair belongs to, and in which of PEFT's layouts: the one whose
     * dimensions its shapes match, trying the layout {@code current} names (null: the older one first).
     */
    private static Fused fusedParameter(Path file, String key, List<AdapterSite> sites, Tensor a, Tensor b,
                                        ModelConfig config, Boolean current) {
        for (AdapterSite s : sites) {
            int[] p = fusedShape(s, config);
            int in = s.transposed() ? p[1] : p[2], out = s.transposed() ? p[2] : p[1];
            boolean[] layouts = current == null ? new boolean[] {s.transposed(), true}
                    : new boolean[] {current || s.transposed()};
            for (boolean aIsInput : layouts) {
                if (a.dim(0) % p[0] == 0 && a.dim(1) == (aIsInput ? in : out) && b.dim(0) == (aIsInput ? out : in)) {
                    return new Fused(s, aIsInput);
                }
            }
        }
        var expected = new ArrayList<String>();
        sites.forEach(s -> expected.add(s.parameter() + " " + java.util.Arrays.toString(fusedShape(s, config))));
        throw new BadInputException(file + ": '" + key + "' (lora_A " + shape(a) + ", lora_B " + shape(b)
                + ") fits none of the experts' parameters " + String.join(", ", expected));
    }

    /** transformers' shape of a fused expert parameter: [E, 2I, H] and [E, H, I], or [E, H, 2I] and [E, I, H] transposed. */
    private static int[] fusedShape(AdapterSite s, ModelConfig config) {
        MoeConfig moe = config.moe().orElseThrow();
        boolean shared = s.name().contains(".shared_experts.");
        int e = shared ? 1 : moe.experts(), inter = shared ? moe.sharedIntermediate() : moe.intermediate();
        int h = moe.hidden(), gu = moe.ffn().gated() ? 2 * inter : inter;
        boolean gateUp = s.parameter().equals("gate_up_proj");
        int out = gateUp ? gu : h, in = gateUp ? h : inter;
        return s.transposed() ? new int[] {e, in, out} : new int[] {e, out, in};
    }

    private static int expertCount(AdapterSite s, ModelConfig config) {
        return fusedShape(s, config)[0];
    }

    private static void requireRank(Path file, String key, int r, int rank) {
        if (r != rank) {
            throw new BadInputException(file + ": '" + key + "' has rank " + r + " but " + CONFIG + " says r = " + rank
                    + " for it");
        }
    }

    private static void put(Map<String, Entry> out, Path file, String name, Entry e) {
        if (out.put(name, e) != null) {
            throw new BadInputException(file + ": two adapters for " + name + " (the second is '" + e.key() + "')");
        }
    }

    private static String shape(Tensor t) {
        return java.util.Arrays.toString(t.shape());
    }

    @Override
    public Lora linear(String weight, int out, int in) {
        String name = Transformer.adapterName(weight);
        Entry e = entries.get(name);
        if (e == null) {
            return null;
        }
        if (e.a().rank() != 2 || e.a().dim(1) != in || e.b().dim(0) != out) {
            throw new BadInputException(folder.resolve(WEIGHTS) + ": '" + e.key() + "' (lora_A " + shape(e.a())
                    + ", lora_B " + shape(e.b()) + ") does not fit the model's " + weight + " [" + out + ", " + in + "]");
        }
        used.add(name);
        return new Lora(new Parameter(name + ".lora_a", e.a()), new Parameter(name + ".lora_b", e.b()), e.scale());
    }

    @Override
    public ExpertLora experts(String name, int experts, int out, int in) {
        Entry e = entries.get(name);
        if (e == null) {
            return null;
        }
        Tensor a = e.a().rank() == 2 ? e.a().reshape(1, e.a().dim(0), e.a().dim(1)) : e.a();
        Tensor b = e.b().rank() == 2 ? e.b().reshape(1, e.b().dim(0), e.b().dim(1)) : e.b();
        if (a.dim(0) != experts || a.dim(2) != in || b.dim(1) != out) {
            throw new BadInputException(folder.resolve(WEIGHTS) + ": '" + e.key() + "' does not fit the model's " + name
                    + " (" + experts + " experts of [" + out + ", " + in + "])");
        }
        used.add(name);
        return new ExpertLora(new Parameter(name + ".lora_a", a), new Parameter(name + ".lora_b", b), e.scale());
    }

    @Override
    public void requireAllUsed() {
        for (var e : entries.entrySet()) {
            if (!used.contains(e.getKey())) {
                throw new BadInputException(folder.resolve(WEIGHTS) + ": '" + e.getValue().key() + "' adapts "
                        + e.getKey() + ", which the model does not compute");
            }
        }
    }

    // ---- writing ----

    /**
     * Writes the adapters of {@code model} as a PEFT adapter into {@code folder} (created if need be; each file
     * written under a temporary name and moved into place), in {@code dtype}, for PEFT 0.17+ on transformers 5:
     * fused experts through target_parameters.
     *
     * @param baseModel base_model_name_or_path: the folder or hub id of the base model
     */
    public static void write(Path folder, Transformer model, LoraSettings settings, String baseModel, DType dtype) {
        var modules = new TreeSet<String>();
        var parameters = new TreeSet<String>();
        var tensors = new LinkedHashMap<String, Tensor>();
        tensors(model, settings.rank(), Parameter::value, modules, parameters).forEach((k, t) -> tensors.put(k, t.to(dtype)));
        try {
            Files.createDirectories(folder);
        } catch (java.io.IOException ex) {
            throw new BadInputException(folder + ": cannot create (" + ex.getMessage() + ")");
        }
        SafetensorsWriter.write(folder.resolve(WEIGHTS), tensors, Map.of("format", "pt"));
        AtomicFiles.writeString(folder.resolve(CONFIG), Json.pretty(config(settings, baseModel, modules, parameters))
                + "\n");
    }

    /**
     * {@code part} (the value, or the gradient) of every adapter of {@code model} as PEFT lays it out, by PEFT's key
     * ({@code base_model.model.<module>.lora_A.weight}, ...): what {@link #write} saves, and what parity tests compare
     * with PEFT's own tensors.
     */
    public static Map<String, Tensor> tensors(Transformer model, java.util.function.Function<Parameter, Tensor> part) {
        return tensors(model, -1, part, new TreeSet<>(), new TreeSet<>());
    }

    private static Map<String, Tensor> tensors(Transformer model, int rank,
                                               java.util.function.Function<Parameter, Tensor> part,
                                               Set<String> modules, Set<String> parameters) {
        Map<String, Parameter> adapters = model.adapters();
        if (adapters.isEmpty()) {
            throw new IllegalArgumentException("the model has no adapters to save");
        }
        var sites = new HashMap<String, AdapterSite>();
        for (AdapterSite s : AdapterSite.of(model.config())) {
            if (s.kind() != AdapterSite.Kind.EXPERT) {
                sites.put(s.name(), s);
            }
        }
        var adapted = new LinkedHashMap<String, AdapterSite>();
        for (String name : adapters.keySet()) {
            String base = name.substring(0, name.lastIndexOf('.'));
            AdapterSite s = sites.get(base);
            if (s == null) {
                throw new IllegalArgumentException(base + ": no place in a " + model.config().family()
                        + " model that PEFT adapts in this layout");
            }
            adapted.put(base, s);
        }
        var tensors = new LinkedHashMap<String, Tensor>();
        for (var e : adapted.entrySet()) {
            String base = e.getKey();
            AdapterSite s = e.getValue();
            Tensor a = part.apply(adapters.get(base + ".lora_a")), b = part.apply(adapters.get(base + ".lora_b"));
            if (rank > 0 && a.dim(a.rank() - 2) != rank) {
                throw new IllegalArgumentException(base + ": rank " + a.dim(a.rank() - 2) + ", not " + rank);
            }
            String module = s.module();
            Tensor loraA, loraB;
            if (s.kind() == AdapterSite.Kind.EXPERTS) {
                // PEFT wraps a module's parameters in the order the module registers them (gate_up_proj, then
                // down_proj), each wrapper around the last: the earlier one sits under base_layer.
                if (s.parameter().equals("gate_up_proj")
                        && adapted.containsKey(base.substring(0, base.lastIndexOf('.') + 1) + "down_proj")) {
                    module += ".base_layer";
                }
                Tensor[] ab = PeftLayout.toPeft(a, b);
                loraA = ab[0];
                loraB = ab[1];
                parameters.add(s.targetEntry());
            } else {
                loraA = a.rank() == 3 ? a.reshape(a.dim(1), a.dim(2)) : a;
                loraB = b.rank() == 3 ? b.reshape(b.dim(1), b.dim(2)) : b;
                (s.kind() == AdapterSite.Kind.ROUTER ? parameters : modules).add(s.targetEntry());
            }
            tensors.put(PREFIX + module + ".lora_A.weight", loraA);
            tensors.put(PREFIX + module + ".lora_B.weight", loraB);
        }
        return tensors;
    }

    private static ObjectNode config(LoraSettings s, String baseModel, Set<String> modules, Set<String> parameters) {
        ObjectNode c = Json.mapper().createObjectNode();
        c.putObject("alpha_pattern");
        c.putNull("auto_mapping");
        c.put("base_model_name_or_path", baseModel);
        c.put("bias", "none");
        c.put("fan_in_fan_out", false);
        c.put("inference_mode", true);
        c.put("init_lora_weights", true);
        c.putNull("layers_pattern");
        c.putNull("layers_to_transform");
        if (s.alpha() == Math.rint(s.alpha())) {
            c.put("lora_alpha", (long) s.alpha());
        } else {
            c.put("lora_alpha", s.alpha());
        }
        c.put("lora_bias", false);
        c.put("lora_dropout", 0.0);
        c.putNull("modules_to_save");
        c.put("peft_type", "LORA");
        // The layout written is PEFT 0.19.1's and later (lora_A spans every expert parameter's input), checked
        // against PEFT 0.21.0 on transformers 5.17: older readers would take fused experts' adapters the wrong way round.
        c.put("peft_version", WRITTEN_AS);
        c.put("r", s.rank());
        c.putObject("rank_pattern");
        c.putNull("revision");
        ArrayNode m = c.putArray("target_modules");
        modules.forEach(m::add);
        ArrayNode p = c.putArray("target_parameters");
        parameters.forEach(p::add);
        c.put("task_type", "CAUSAL_LM");
        c.put("use_dora", false);
        c.put("use_rslora", s.rsLora());
        return c;
    }
}
