// Component resources that compose the build resources (they never spawn processes). The first,
// TrustedBootImage, arrives with the UKI and boot-media resources.
export {};
