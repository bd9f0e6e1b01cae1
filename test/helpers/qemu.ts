// The QEMU/OVMF harness lives beside the demo that uses it too.
export * from "../../scripts/lib/qemu";
