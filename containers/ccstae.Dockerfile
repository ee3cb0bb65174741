# Docker twin of containers/ccstae.def. Build from the repository root:
#   docker build -f containers/ccstae.Dockerfile -t strainbench-ccstae .
FROM pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
COPY . /opt/strainbench
WORKDIR /opt/strainbench
RUN python -m pip install --no-cache-dir -c constraints.txt -e '.[ccstae]'
ENV PYTHONUNBUFFERED=1
