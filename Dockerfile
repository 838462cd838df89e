# One image for linkflow's processes: the worker (default), the codec server / API (`python -m api`)
# and the provider sandbox.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY linkflow ./linkflow
COPY workflows ./workflows
COPY activities ./activities
COPY providers ./providers
COPY sandbox ./sandbox
COPY api ./api
COPY worker.py starter.py ./
RUN pip install --no-cache-dir .
# The workflow sandbox imports the link's module for every run: give it bytecode to read.
RUN python -m compileall -q /app
USER nobody
CMD ["python", "worker.py"]
