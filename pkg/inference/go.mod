module veid/pkg/inference

go 1.19
