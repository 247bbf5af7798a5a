// compose-check loads docker/compose.yaml with compose-go, the loader `docker compose` itself uses
// (schema validation, interpolation, normalisation), since no container engine runs here, and then
// checks what the README promises of it: the worker scales (`docker compose up --scale worker=N`)
// and any worker can resume any run, the GPU worker gets every GPU with one trainer per GPU, and
// every published port is bound to the loopback address (nothing unauthenticated on the network).
//
//	compose-check [--print] docker/compose.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	args := os.Args[1:]
	print := len(args) > 0 && args[0] == "--print"
	if print {
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [--print] <compose.yaml>")
		os.Exit(2)
	}
	// Every profile, so the gpu worker is loaded and checked too.
	opts, err := cli.NewProjectOptions(args, cli.WithName("durable-train"), cli.WithProfiles([]string{"*"}), cli.WithResolvedPaths(true))
	if err == nil {
		var project *types.Project
		project, err = opts.LoadProject(context.Background())
		if err == nil {
			if print {
				out, _ := project.MarshalYAML()
				fmt.Print(string(out))
			}
			problems := check(project)
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "compose-check: %s: %s\n", args[0], p)
			}
			if len(problems) > 0 {
				os.Exit(1)
			}
			fmt.Printf("compose-check: %s: valid; %d services (%s); worker scales, GPU worker reserves all GPUs, ports on loopback only\n",
				args[0], len(project.Services), strings.Join(project.ServiceNames(), ", "))
			return
		}
	}
	fmt.Fprintf(os.Stderr, "compose-check: %s: %v\n", args[0], err)
	os.Exit(1)
}

func check(p *types.Project) []string {
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, name := range []string{"postgresql", "temporal", "gcs", "worker", "worker-gpu"} {
		if _, ok := p.Services[name]; !ok {
			fail("expected a service `%s`", name)
		}
	}
	for _, name := range []string{"worker", "worker-gpu"} {
		s, ok := p.Services[name]
		if !ok {
			continue
		}
		// `--scale worker=N` starts N copies: a fixed name or host port would clash.
		if s.ContainerName != "" {
			fail("service `%s`: expected no container_name (it must scale), got %q", name, s.ContainerName)
		}
		if len(s.Ports) > 0 {
			fail("service `%s`: expected no published ports (it must scale), got %d", name, len(s.Ports))
		}
		// Any worker resumes any run: checkpoints in the shared bucket, not in the container.
		if uri := env(s, "DT_CHECKPOINT_URI"); !strings.HasPrefix(uri, "gs://") {
			fail("service `%s`: expected DT_CHECKPOINT_URI to be a gs:// URI every worker shares, got %q", name, uri)
		}
		if env(s, "STORAGE_EMULATOR_HOST") == "" || env(s, "TEMPORAL_ADDRESS") == "" {
			fail("service `%s`: expected STORAGE_EMULATOR_HOST and TEMPORAL_ADDRESS", name)
		}
		for _, dep := range []string{"temporal", "gcs"} {
			if _, ok := s.DependsOn[dep]; !ok {
				fail("service `%s`: expected depends_on %s", name, dep)
			}
		}
		if s.Build == nil {
			fail("service `%s`: expected a build section", name)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			fail("service `%s`: dockerfile %s: %v", name, s.Build.Dockerfile, err)
		}
	}
	// Temporal, its UI and the GCS emulator have no authentication here: published on loopback only.
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" && port.HostIP != "::1" {
				host := port.HostIP
				if host == "" {
					host = "every interface"
				}
				fail("service `%s`: expected published port %s bound to 127.0.0.1, got %s", name, port.Published, host)
			}
		}
	}
	// Files the stack mounts from this repository must be there.
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					fail("service `%s`: bind mount source: %v", name, err)
				}
			}
		}
	}
	if s, ok := p.Services["worker-gpu"]; ok {
		// One trainer per GPU comes from the worker's default (DT_TRAINER_SLOTS unset: one per visible GPU).
		if v := env(s, "DT_TRAINER_SLOTS"); v != "" {
			fail("service `worker-gpu`: expected DT_TRAINER_SLOTS unset (one slot per GPU), got %q", v)
		}
		if env(s, "DT_BACKEND") != "tensorflow-gpu" {
			fail("service `worker-gpu`: expected DT_BACKEND=tensorflow-gpu, got %q", env(s, "DT_BACKEND"))
		}
		gpus := false
		if s.Deploy != nil && s.Deploy.Resources.Reservations != nil {
			for _, d := range s.Deploy.Resources.Reservations.Devices {
				for _, c := range d.Capabilities {
					gpus = gpus || (c == "gpu" && d.Count == -1)
				}
			}
		}
		if !gpus {
			fail("service `worker-gpu`: expected a device reservation with capabilities [gpu] and count: all")
		}
		if len(s.Profiles) == 0 {
			fail("service `worker-gpu`: expected a profile (a plain `docker compose up` must not need a GPU)")
		}
	}
	return problems
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}
