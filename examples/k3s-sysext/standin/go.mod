module pulumi-kairos/k3s-standin

go 1.21
