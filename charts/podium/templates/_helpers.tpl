{{- /* `helm install podium ...` names things `podium-*`, not `podium-podium-*`. */ -}}
{{- define "podium.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podium.labels" -}}
app.kubernetes.io/name: podium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "podium.selectorLabels" -}}
app.kubernetes.io/name: podium
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "podium.redisHost" -}}
{{- printf "%s-redis" (include "podium.fullname" .) -}}
{{- end -}}

{{- define "podium.redisURL" -}}
{{- if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else if not .Values.redis.enabled -}}
{{- fail "redis.enabled=false needs redis.url (e.g. redis://redis.example:6379/0) and, if it has a password, redis.existingSecret" -}}
{{- else -}}
{{- printf "redis://%s.%s.svc:6379/0" (include "podium.redisHost" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "podium.redisSecret" -}}
{{- default (printf "%s-redis" (include "podium.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "podium.modelServerName" -}}
{{- printf "%s-model-server" (include "podium.fullname" .) -}}
{{- end -}}

{{- /* What an Agent's backend.llm.baseURL takes to reach the chart's model server from any namespace. */ -}}
{{- define "podium.modelServerURL" -}}
{{- printf "http://%s.%s.svc:%v/v1" (include "podium.modelServerName" .) .Release.Namespace .Values.modelServer.port -}}
{{- end -}}

{{- /* Where `helm test` makes its Agent and Orchestration: tests.namespace, else the first watched namespace, else the
release namespace (the operator must watch it). */ -}}
{{- define "podium.tests.namespace" -}}
{{- .Values.tests.namespace | default (first (.Values.watchNamespaces | default (list .Release.Namespace))) -}}
{{- end -}}

{{- /* NetworkPolicies (templates/networkpolicy.yaml). The labels every agent pod carries (operator/podium/operator/
agents/children.py common_labels). */ -}}
{{- define "podium.networkPolicy.agentLabels" -}}
app.kubernetes.io/name: podium-agent
app.kubernetes.io/managed-by: podium-operator
{{- end -}}

{{- /* Where Agents run: watchNamespaces, else networkPolicy.agentNamespaces; plus the helm test's namespace. */ -}}
{{- define "podium.networkPolicy.agentNamespaces" -}}
{{- $ns := .Values.watchNamespaces | default .Values.networkPolicy.agentNamespaces -}}
{{- if not $ns -}}
{{- fail "networkPolicy.enabled with an operator that watches every namespace (watchNamespaces empty) needs networkPolicy.agentNamespaces: the namespaces your Agents run in, where the chart puts their NetworkPolicy" -}}
{{- end -}}
{{- if dig "tests" "enabled" false .Values.AsMap -}}
{{- $ns = append $ns (include "podium.tests.namespace" .) -}}
{{- end -}}
{{- toJson ($ns | uniq) -}}
{{- end -}}

{{- define "podium.networkPolicy.operatorPeer" -}}
{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: {{ .Release.Namespace }}}}, podSelector: {matchLabels: {app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/component: operator}}}
{{- end -}}

{{- define "podium.networkPolicy.agentPeer" -}}
{{- $ns := include "podium.networkPolicy.agentNamespaces" . | fromJsonArray -}}
{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: {{ toJson $ns }}}]}, podSelector: {matchLabels: {app.kubernetes.io/name: podium-agent, app.kubernetes.io/managed-by: podium-operator}}}
{{- end -}}

{{/* The operator's OpenTelemetry variables (docs/observability.md); it passes them on to agent pods. */}}
{{- define "podium.tracingEnv" -}}
{{- with .Values.tracing }}
{{- if .enabled }}
{{- if not .otlpEndpoint }}
{{- fail "tracing.enabled needs tracing.otlpEndpoint: the OTLP/HTTP base URL of your receiver, e.g. http://otel-collector.observability:4318" }}
{{- end }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | toString | quote }}
{{- with .resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ . | quote }}
{{- end }}
{{- if not .agents }}
- name: PODIUM_TRACING_AGENTS
  value: "false"
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
