// A user's program, as plain JavaScript against the installed package: keys, one signed extension,
// the OS as a UKI and an ISO. Every path is relative, so it means the project folder wherever that is.
const { SigningKeys, SystemExtension, KairosUkiImage, BootMedia } = require("pulumi-kairos");

module.exports = async () => {
    const keys = new SigningKeys("keys", { name: "consumer", outputDir: "out/keys" });
    const hello = new SystemExtension("hello", { name: "hello", outputDir: "out/extensions", source: { dir: "payload/hello" }, signingKeys: keys });
    const os = new KairosUkiImage("os", { outputDir: "out/uki", source: { dir: "os" }, signingKeys: keys });
    // "force": the test OS ships Debian 12's systemd-boot 252, which predates the default "if-safe"
    const media = new BootMedia("media", { name: "kairos", outputDir: "out/media", ukiImage: os, signingKeys: keys, extensions: [hello], secureBootEnroll: "force" });
    return { iso: media.path, isoSha256: media.sha256, extension: hello.path, keyDir: keys.keyDir };
};
