// Small stand-ins for UKI inputs: a fake x86 bzImage (setup header only) and throwaway keys.

/** A fake x86 bzImage: the setup header magic and a kernel_version pointer, nothing that runs. */
export function fakeBzImage(version: string, size = 0x2000): Buffer {
    const buf = Buffer.alloc(size, 0x90);
    buf.write("HdrS", 0x202, "latin1");
    buf.writeUInt16LE(0x300, 0x20e);
    buf.write(`${version}\0`, 0x500, "latin1");
    return buf;
}
