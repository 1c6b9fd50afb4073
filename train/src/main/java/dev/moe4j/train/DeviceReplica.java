package dev.moe4j.train;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.model.transformer.Transformer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The model being trained, copied to a device where its passes run: the same {@link Transformer} code over trainable
 * F32 copies of the parameters (the device's products read them in BF16). The host keeps the master weights, the
 * optimiser and the routing buffers: before a step the weights and buffers go to the device, after it the gradients
 * and the buffers the forward pass moved (expert-choice thresholds) come back, so clipping, AdamW, bias balancing,
 * checkpoints and samples are the CPU's code, unchanged.
 */
final class DeviceReplica {
    private final Transformer model;
    private final List<Parameter> host = new ArrayList<>();
    private final List<Parameter> device = new ArrayList<>();
    private final List<Tensor> hostBuffers = new ArrayList<>();
    private final List<Tensor> deviceBuffers = new ArrayList<>();
    private boolean stale = true;

    DeviceReplica(Transformer hostModel, Backend backend) {
        this.model = Transformer.placed(hostModel.config(), hostModel.weights(), backend, true);
        Map<String, Parameter> onHost = Trainer.parameters(hostModel), onDevice = Trainer.parameters(model);
        onHost.forEach((name, p) -> {
            Parameter d = onDevice.get(name);
            if (d == null) {
                throw new IllegalStateException("the device copy has no parameter " + name);
            }
            host.add(p);
            device.add(d);
        });
        // Routing buffers stay in host memory on both sides, as separate copies.
        Map<String, Tensor> hostTensors = hostModel.tensors(), deviceTensors = model.tensors();
        hostTensors.forEach((name, t) -> {
            Tensor d = deviceTensors.get(name);
            if (t.isHost() && d != null && d.isHost() && d != t && !onHost.containsKey(name)) {
                hostBuffers.add(t);
                deviceBuffers.add(d);
            }
        });
    }

    /** The model on the device. */
    Transformer model() {
        return model;
    }

    /** The host's weights have changed (an optimiser step): the next pass must copy them first. */
    void invalidate() {
        stale = true;
    }

    /** Copies the host's weights and routing buffers to the device copy if they changed since the last time. */
    void pushWeights() {
        if (stale) {
            for (int i = 0; i < host.size(); i++) {
                device.get(i).value().copyFrom(host.get(i).value());
            }
            stale = false;
        }
        for (int i = 0; i < hostBuffers.size(); i++) {
            deviceBuffers.get(i).copyFrom(hostBuffers.get(i));
        }
    }

    /** Sets the device copy's gradients to zero. */
    void zeroGradients() {
        device.forEach(Parameter::zeroGrad);
    }

    /** Brings the gradients of the step and the routing buffers it moved back to the host. */
    void pullGradients() {
        for (int i = 0; i < host.size(); i++) {
            Parameter d = device.get(i);
            if (d.hasGrad()) {
                host.get(i).grad().copyFrom(d.grad());
            }
        }
        for (int i = 0; i < hostBuffers.size(); i++) {
            hostBuffers.get(i).copyFrom(deviceBuffers.get(i));
        }
    }
}
