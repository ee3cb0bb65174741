# Docker twin of containers/py4dstem.def. Build from the repository root:
#   docker build -f containers/py4dstem.Dockerfile -t strainbench-py4dstem .
FROM python:3.11-slim-bookworm
COPY . /opt/strainbench
WORKDIR /opt/strainbench
RUN python -m pip install --no-cache-dir -c constraints.txt -e '.[py4dstem]'
ENV PYTHONUNBUFFERED=1
