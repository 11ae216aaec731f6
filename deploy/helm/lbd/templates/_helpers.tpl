{{/* SPDX-License-Identifier: Apache-2.0 */}}

{{- define "lbd.labels" -}}
app.kubernetes.io/name: lbd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lbd.selectorLabels" -}}
app.kubernetes.io/name: lbd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lbd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
