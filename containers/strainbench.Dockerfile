# Docker twin of containers/strainbench.def. Build from the repository root:
#   docker build -f containers/strainbench.Dockerfile -t strainbench-strainbench .
FROM python:3.11-slim-bookworm
COPY . /opt/strainbench
WORKDIR /opt/strainbench
RUN python -m pip install --no-cache-dir -c constraints.txt -e '.[multislice,formats,workflow]'
ENV PYTHONUNBUFFERED=1
