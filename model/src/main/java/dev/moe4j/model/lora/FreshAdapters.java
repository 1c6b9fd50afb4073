package dev.moe4j.model.lora;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.expert.ExpertLora;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.SplittableRandom;

/**
 * New adapters for training, initialised as PEFT initialises them by default: lora_A uniform on ±1/√(its input
 * width) (torch's kaiming_uniform_ with a = √5), lora_B zero, so that the adapted model starts as the base model.
 * lora_A is moe4j's a, the input side, for fused experts too (PEFT 0.19.1 on, {@link PeftLayout}). Each adapter
 * draws from its own generator, seeded by the settings' seed and its name, so the values do not depend on the order
 * the model asks in.
 */
final class FreshAdapters implements AdapterSource {
    private final LoraSettings settings;
    private final List<AdapterSite> sites;

    FreshAdapters(LoraSettings settings, ModelConfig config) {
        this.settings = settings;
        this.sites = AdapterSite.of(config).stream().filter(s -> s.kind() != AdapterSite.Kind.EXPERT).toList();
        var offered = new LinkedHashSet<String>();
        sites.forEach(s -> offered.add(s.target()));
        for (String t : settings.targets()) {
            if (!offered.contains(t)) {
                throw new BadInputException("--lora-targets: this " + config.family() + " model has no '" + t
                        + "' (it offers " + String.join(", ", offered) + ")");
            }
        }
    }

    private AdapterSite site(String name) {
        for (AdapterSite s : sites) {
            if (s.name().equals(name) && settings.targets().contains(s.target())) {
                return s;
            }
        }
        return null;
    }

    @Override
    public Lora linear(String weight, int out, int in) {
        String name = Transformer.adapterName(weight);
        AdapterSite site = site(name);
        if (site == null) {
            return null;
        }
        Tensor a = Tensor.zeros(settings.rank(), in);
        PeftLayout.kaimingUniform(a, in, random(name));
        return new Lora(new Parameter(name + ".lora_a", a), new Parameter(name + ".lora_b",
                Tensor.zeros(out, settings.rank())), settings.scale());
    }

    @Override
    public ExpertLora experts(String name, int experts, int out, int in) {
        AdapterSite site = site(name);
        if (site == null) {
            return null;
        }
        Tensor a = Tensor.zeros(experts, settings.rank(), in), b = Tensor.zeros(experts, out, settings.rank());
        PeftLayout.kaimingUniform(a, in, random(name));
        return new ExpertLora(new Parameter(name + ".lora_a", a), new Parameter(name + ".lora_b", b),
                settings.scale());
    }

    private SplittableRandom random(String name) {
        return new SplittableRandom(settings.seed() * 0x9E3779B97F4A7C15L + name.hashCode());
    }
}
