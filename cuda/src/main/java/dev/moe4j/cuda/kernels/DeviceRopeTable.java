package dev.moe4j.cuda.kernels;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.RopeTable;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.DeviceTensor;

/** A {@link RopeTable} on a device: cos and sin [positions, rotaryDim / 2], F32, the same numbers as the host's. */
public final class DeviceRopeTable implements AutoCloseable {
    private final DeviceTensor cos;
    private final DeviceTensor sin;
    private final int rotaryDim;
    private final int maxPositions;

    public DeviceRopeTable(CudaDevice device, RopeTable table) {
        int half = table.rotaryDim() / 2, positions = table.maxPositions();
        Tensor c = Tensor.zeros(positions, half), s = Tensor.zeros(positions, half);
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < half; i++) {
                c.setFloat((long) p * half + i, table.cos(p, i));
                s.setFloat((long) p * half + i, table.sin(p, i));
            }
        }
        this.cos = device.upload(c, DType.F32);
        this.sin = device.upload(s, DType.F32);
        this.rotaryDim = table.rotaryDim();
        this.maxPositions = positions;
    }

    DeviceTensor cos() {
        return cos;
    }

    DeviceTensor sin() {
        return sin;
    }

    public int rotaryDim() {
        return rotaryDim;
    }

    public int maxPositions() {
        return maxPositions;
    }

    @Override
    public void close() {
        cos.close();
        sin.close();
    }
}
